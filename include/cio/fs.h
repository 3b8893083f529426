/* cio/fs.h: files and the file system, without blocking the loop
 * (aiofiles' job).
 *
 * Regular files are always "ready" to poll(2), so readiness cannot tell
 * when a read would wait for the disk. On the epoll backend every call
 * below therefore runs its system call on a thread of the loop's
 * CIO_POOL_FILES pool (see cio/exec.h): the calling task waits, the loop
 * does not. On io_uring every call is a ring operation instead (OPENAT,
 * CLOSE, READ, WRITE, FSYNC, STATX, UNLINKAT, RENAMEAT, MKDIRAT), with no
 * thread of cio's involved, behind the same functions and with the same
 * results and error codes; an opcode the running kernel lacks falls back
 * to the pool, call by call. Opens that may wait (a FIFO opened for
 * reading or writing only, without O_NONBLOCK) keep open(2)'s blocking
 * semantics by running on the pool (io_uring itself would open a FIFO
 * without waiting for its other side).
 *
 * Common rules for every call here:
 * - Bad arguments (a NULL path, buffer or out-parameter, a negative fd)
 *   are reported at once (-EINVAL, or -EBADF for the fd) without using
 *   the pool; CIO_ENOTASK outside a task.
 * - Each call suspends and is a cancellation point: if the task is
 *   cancelled (or a deadline of its scopes passes) before the operation
 *   starts, the operation is dropped, has no effect, and the call returns
 *   -ECANCELED. An operation that has started (on a pool thread, or in
 *   the kernel for a ring operation) cannot always be stopped: the call
 *   asks the kernel to cancel it, waits until it is over and returns how
 *   it ended: -ECANCELED if it was stopped in time (no effect), else its
 *   result (a completed operation beats a late cancel; the cancellation
 *   surfaces at the next suspension point). So a cancelled call has
 *   either done nothing or done everything, and says which: a cancelled
 *   cio_file_rename, unlink or mkdir that returns 0 did happen, and a
 *   cancelled cio_file_open that returns 0 hands over its fd, which the
 *   caller must close as usual. Once a call returns, neither a thread nor
 *   the kernel touches the caller's buffer or paths.
 * - -EAGAIN if the pool's queue is full or no thread could be started;
 *   -ENOMEM; otherwise the negated errno of the system call.
 * - Descriptors opened here are close-on-exec and blocking: use them with
 *   the calls below, not with cio_fd_wait or streams.
 * - Concurrent calls on one fd run in parallel, in no set order; calls
 *   using the current offset (cio_file_read, cio_file_write) should not be
 *   issued from two tasks at once.
 */
#ifndef CIO_FS_H
#define CIO_FS_H

#include <sys/stat.h>
#include <sys/types.h>

#include "core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- Opening and closing ---------------------------------------------- */

/* open(2) `path` with `flags` (O_RDONLY, O_WRONLY | O_CREAT | O_TRUNC,
 * ...; O_CLOEXEC is always added) and `mode` for a created file. Stores
 * the new fd in `*fd`, which the caller owns and releases with
 * cio_file_close. Returns 0; -ENOENT, -EACCES, -EEXIST (O_EXCL), -EISDIR,
 * ...; -ECANCELED (nothing was opened; see the cancellation rule above
 * for an open that completed anyway). Opening a FIFO waits, on the pool's
 * thread, for the other side. Suspends. */
int cio_file_open(int *fd, const char *path, int flags, mode_t mode);

/* Close `fd` (opened by cio_file_open). The descriptor is released when
 * this returns, whatever it returns: if the close could not run on the
 * pool (cancelled first, or -EAGAIN), it is closed on the loop's thread.
 * Returns 0; -EIO (a write-back error reported by close(2)); -EBADF;
 * -ECANCELED (the task was cancelled; the fd is closed all the same).
 * Works outside a task too (then it closes on the calling thread).
 * Suspends. */
int cio_file_close(int fd);

/* ---- Reading and writing ---------------------------------------------- */

/* Read up to `n` bytes at the current offset of `fd` into `buf`, moving
 * the offset. Returns the count (less than `n` near the end of the file),
 * 0 at end of file, -ECANCELED (nothing read, offset unchanged), -EISDIR,
 * -errno. At most 0x7ffff000 bytes are transferred per call, as read(2)
 * does on Linux. Suspends. */
ssize_t cio_file_read(int fd, void *buf, size_t n);

/* Write up to `n` bytes from `buf` at the current offset (at the end with
 * O_APPEND). Returns the count written (a short count is possible, as
 * with write(2); for a regular file it means the disk is full or a limit
 * was hit), -ECANCELED (nothing written), -ENOSPC, -EBADF, -errno.
 * Suspends. */
ssize_t cio_file_write(int fd, const void *buf, size_t n);

/* pread(2) / pwrite(2): as cio_file_read / cio_file_write at the absolute
 * `offset`, leaving the current offset alone. -EINVAL for a negative
 * offset; -ESPIPE on a pipe. Suspend. */
ssize_t cio_file_pread(int fd, void *buf, size_t n, off_t offset);
ssize_t cio_file_pwrite(int fd, const void *buf, size_t n, off_t offset);

/* fsync(2): wait until the data and metadata of `fd` are on stable
 * storage. Returns 0; -EIO; -ECANCELED (not synced); -errno. Suspends. */
int cio_file_fsync(int fd);

/* Read the whole file at `path` into memory: asyncio programs' `await
 * f.read()`. On success `*data` points to `*len` bytes followed by a NUL
 * (so text can be used as a C string; `*len` does not count it), and the
 * caller owns the memory and releases it with free(3) (it is plain
 * malloc'd memory, so it may outlive the loop). `max` bounds the size
 * accepted: a file holding more than `max` bytes gives -EFBIG, as a
 * line over the limit is an error in streams, not unbounded growth.
 * The file is read in chunks, each a separate operation on the pool, so
 * a large file does not hold a thread for long and cancellation is seen
 * between chunks. Returns 0; -EINVAL for a NULL argument or `max` 0;
 * -EFBIG; -ENOENT, -EISDIR, -EACCES, ...; -ENOMEM; -ECANCELED. On any
 * error nothing is allocated and `*data`, `*len` are left untouched.
 * Suspends. */
int cio_file_read_all(const char *path, char **data, size_t *len,
                      size_t max);

/* ---- Metadata and names ---------------------------------------------- */

/* stat(2) `path` (following symbolic links) into `*st`. Returns 0,
 * -ENOENT, -ENOTDIR, -EACCES, -ECANCELED (`*st` untouched), -errno.
 * Suspends. */
int cio_file_stat(const char *path, struct stat *st);

/* fstat(2) `fd` into `*st`. As cio_file_stat; -EBADF. Suspends. */
int cio_file_fstat(int fd, struct stat *st);

/* unlink(2) `path`. Returns 0, -ENOENT, -EISDIR (a directory), -EACCES,
 * -ECANCELED (nothing removed). Suspends. */
int cio_file_unlink(const char *path);

/* rename(2) `from` to `to`, replacing `to` atomically if it exists.
 * Returns 0, -ENOENT (no `from`, or no directory for `to`), -EXDEV (across
 * file systems), -EISDIR, -ENOTEMPTY, -ECANCELED (nothing renamed),
 * -errno. Suspends. */
int cio_file_rename(const char *from, const char *to);

/* mkdir(2) `path` with `mode` (masked by the umask). Returns 0, -EEXIST,
 * -ENOENT (a missing parent), -EACCES, -ECANCELED (nothing created).
 * Suspends. */
int cio_file_mkdir(const char *path, mode_t mode);

#ifdef __cplusplus
}
#endif
#endif
