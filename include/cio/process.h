/* cio/process.h: child processes (asyncio.create_subprocess_exec).
 *
 * A child starts with an empty signal mask and every signal at its default
 * action, whatever the loop's thread blocks or ignores (cio blocks SIGINT
 * and SIGTERM there to read them from a signalfd, and SIGPIPE), and
 * whatever the program ignores (a server's SIGPIPE). It inherits no
 * descriptor but 0, 1 and 2: cio's own are close-on-exec, and any other
 * descriptor of the program is closed in the child (Python's close_fds).
 *
 * The pipes to the child are Unix-domain socket pairs, as libuv makes
 * them: the child sees an ordinary byte stream on its 0/1/2, and the
 * parent's side works with every stream call, including
 * cio_stream_write_eof.
 *
 * Wait statuses are those of waitpid(2): test them with WIFEXITED,
 * WEXITSTATUS, WIFSIGNALED and WTERMSIG from <sys/wait.h>. They are not
 * folded into the return value, where a signal number would look like an
 * error code.
 *
 * Cancellation: a cancelled cio_process_wait or cio_process_communicate
 * (also by a deadline of the caller's scopes) ends the child: SIGTERM,
 * then, if it has not exited within `kill_grace`, SIGKILL. The call reaps
 * it in a shielded scope before it returns -ECANCELED, so a cancelled
 * caller leaves no process and no zombie behind (unless the child cannot
 * be signalled at all, having changed its user: then it is left running
 * rather than waited for without end). Put a timeout scope around
 * cio_process_wait to run a child with a time limit.
 */
#ifndef CIO_PROCESS_H
#define CIO_PROCESS_H

#include <sys/types.h>

#include "core.h"
#include "io.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct cio_process cio_process;

/* What the child gets as stdin, stdout or stderr. */
enum cio_proc_stdio {
    CIO_PROC_INHERIT = 0, /* the parent's own descriptor */
    CIO_PROC_PIPE = 1,    /* a pipe to the parent, as a cio_stream */
    CIO_PROC_DEVNULL = 2, /* /dev/null */
    CIO_PROC_STDOUT = 3,  /* stderr only: wherever stdout goes */
};

typedef struct cio_process_opts {
    int stdin_mode;  /* enum cio_proc_stdio; 0: INHERIT */
    int stdout_mode;
    int stderr_mode;
    /* Working directory of the child (a relative `file` is found from
     * there); NULL: the parent's. */
    const char *cwd;
    /* The child's environment, NULL-terminated "NAME=value" strings;
     * NULL: the parent's `environ`. */
    char *const *env;
    /* Cancellation: time between SIGTERM and SIGKILL; 0: 1 s. */
    int64_t kill_grace;
    /* Options of the pipe streams (limits, water marks). */
    cio_stream_opts stream;
} cio_process_opts;

/* Start `file` with the arguments `argv` (NULL-terminated; argv[0] is
 * the program's name as it sees it), like execvp(3): a `file`
 * without a '/' is looked up in the PATH of the calling process. `opts`
 * NULL means every stream inherited. The caller owns `*out` and releases
 * it with cio_process_free.
 * Failure to start the program is reported here, with the child already
 * gone: -ENOENT (no such program, or no such cwd), -EACCES (not
 * executable), -ENOTDIR, ... (a file that is not a binary is run by
 * /bin/sh, as execvp does). Also -EINVAL for NULLs, an unknown stdio
 * mode, CIO_PROC_STDOUT for stdin or stdout, or a negative kill_grace;
 * -EMFILE; -ENOMEM; CIO_ENOTASK outside a loop. Does not suspend: the
 * loop's thread is held until the child has called exec (vfork). */
int cio_process_spawn(cio_process **out, const char *file,
                      char *const argv[], const cio_process_opts *opts);

/* The child's process id. The pid is valid until the child is reaped (by
 * cio_process_wait, try_wait, communicate or free); do not signal it
 * with kill(2) after that, use cio_process_kill. */
pid_t cio_process_pid(const cio_process *p);

/* The parent's end of a CIO_PROC_PIPE stream, or NULL when that stream
 * is not a pipe (or stdin was closed by communicate). The streams belong
 * to `p`: read and write them freely, but do not close them (end the
 * child's input with cio_stream_write_eof on stdin, or let
 * cio_process_communicate close it); cio_process_free closes them. */
cio_stream *cio_process_stdin(const cio_process *p);
cio_stream *cio_process_stdout(const cio_process *p);
cio_stream *cio_process_stderr(const cio_process *p);

/* Wait until the child exits, reap it and store its wait status in
 * `*status` (if non-NULL). Returns 0; -ECANCELED if the task was
 * cancelled: the child was then ended and reaped (see the top of this
 * header) and `*status` tells how it ended; -ECHILD if the child was
 * reaped behind cio's back (SIGCHLD ignored, or waitpid(-1) elsewhere).
 * Once the child is reaped, later calls return 0 and the same status at
 * once (after a checkpoint). Several tasks may wait for one child.
 * -EINVAL for NULL; CIO_ENOTASK. Suspends. */
int cio_process_wait(cio_process *p, int *status);

/* Without waiting: if the child has exited, reap it, store its wait
 * status and return 0; else -EAGAIN. -ECHILD as cio_process_wait;
 * -EINVAL for NULL. Does not suspend. */
int cio_process_try_wait(cio_process *p, int *status);

/* Send signal `sig` to the child (0 checks that it exists). Returns 0;
 * -ESRCH once the child has been reaped (its pid may have been reused);
 * -EINVAL for NULL or a bad signal; -EPERM. Does not suspend. */
int cio_process_kill(cio_process *p, int sig);

/* Buffers for cio_process_communicate. Output is stored up to the buffer
 * size; `out_len` and `err_len` tell how many bytes the child wrote, which
 * exceeds the size when output was cut (like snprintf). */
typedef struct cio_process_io {
    const void *in;  /* written to stdin, which is then closed */
    size_t in_len;
    void *out;       /* stdout; NULL with out_size 0 to discard it */
    size_t out_size;
    size_t out_len;  /* set by the call */
    void *err;       /* stderr; likewise */
    size_t err_size;
    size_t err_len;  /* set by the call */
} cio_process_io;

/* asyncio's Process.communicate(): write `io->in` to the child's stdin and
 * close it, read its stdout and stderr to their ends, all at once (in a
 * group of tasks, so a child that fills one pipe while the parent writes
 * another never deadlocks), then wait for it to exit like
 * cio_process_wait. Streams that are not pipes are skipped; stdin, if it
 * is a pipe, is closed even when `in_len` is 0, and a child that exits
 * without reading its input is not an error. Output beyond a buffer's
 * size is read and dropped so that the child can finish.
 * Returns 0 with `*status` (if non-NULL) set; -EMSGSIZE when output was
 * cut, after the child has exited and with `*status` set all the same;
 * -EINVAL for NULLs, or input without a stdin pipe; -ECANCELED: the child
 * was ended and reaped as by a cancelled cio_process_wait, and the
 * lengths tell what was read; a stream error (-ECONNRESET, -ENOMEM): the
 * child is left running. Suspends. */
int cio_process_communicate(cio_process *p, cio_process_io *io,
                            int *status);

/* Release `p`. A child still running is killed with SIGKILL and reaped
 * (the loop's thread waits for the kernel to end it, which is quick), so
 * no zombie is left. The pipe streams are closed; data still queued for
 * stdin is dropped. Call it on the thread of the loop that spawned `p`,
 * when no task is suspended in a call on `p`. NULL is ignored. Does not
 * suspend. */
void cio_process_free(cio_process *p);

#ifdef __cplusplus
}
#endif
#endif
