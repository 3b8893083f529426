/* Files without blocking the loop. On io_uring each call is a ring
 * operation (OPENAT, CLOSE, READ, WRITE, FSYNC, STATX, UNLINKAT,
 * RENAMEAT, MKDIRAT), probed one by one; elsewhere, and for an opcode the
 * kernel lacks, it is one small job run on a thread of the loop's
 * CIO_POOL_FILES pool, behind the same public calls.
 *
 * A request lives on the stack of the task that waits for it; the
 * executor guarantees the job is over (or was never started) when
 * cio_to_thread_pool returns, which is what makes that safe. */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "internal.h"

/* Linux transfers at most this much per read(2)/write(2) (MAX_RW_COUNT);
 * clamping to it also keeps every byte count inside a job's int result. */
#define MAX_RW ((size_t)0x7ffff000)
/* Chunk size of cio_file_read_all: large enough to amortise a trip to the
 * pool, small enough that cancellation is seen soon. */
#define READ_ALL_CHUNK ((size_t)1 << 20)

typedef struct fs_req {
    int fd;
    int flags;
    mode_t mode;
    const char *path, *path2;
    void *buf;
    size_t n;
    off_t off;
    struct stat *st;
} fs_req;

static int neg_errno(long rc)
{
    return rc == -1 ? -errno : (int)rc;
}

/* Run `job(req)` on the files pool and return its result. */
static int submit(cio_task_fn job, fs_req *req)
{
    if (cio__self() == NULL)
        return CIO_ENOTASK;
    cio_pool *p = cio_pool_builtin(CIO_POOL_FILES);
    if (p == NULL)
        return -ENOMEM;
    return cio_to_thread_pool(p, job, req);
}

/* ---- jobs: one system call each, run on a pool thread ------------------ */

static int job_open(void *arg)
{
    fs_req *r = arg;
    int fd;
    do
        fd = open(r->path, r->flags | O_CLOEXEC, r->mode);
    while (fd == -1 && errno == EINTR);
    return neg_errno(fd);
}

static int job_close(void *arg)
{
    fs_req *r = arg;
    /* close(2) releases the fd even when it reports EINTR: never retry. */
    if (close(r->fd) == -1 && errno != EINTR)
        return -errno;
    return 0;
}

static int job_read(void *arg)
{
    fs_req *r = arg;
    ssize_t n;
    do
        n = read(r->fd, r->buf, r->n);
    while (n == -1 && errno == EINTR);
    return neg_errno(n);
}

static int job_write(void *arg)
{
    fs_req *r = arg;
    ssize_t n;
    do
        n = write(r->fd, r->buf, r->n);
    while (n == -1 && errno == EINTR);
    return neg_errno(n);
}

static int job_pread(void *arg)
{
    fs_req *r = arg;
    ssize_t n;
    do
        n = pread(r->fd, r->buf, r->n, r->off);
    while (n == -1 && errno == EINTR);
    return neg_errno(n);
}

static int job_pwrite(void *arg)
{
    fs_req *r = arg;
    ssize_t n;
    do
        n = pwrite(r->fd, r->buf, r->n, r->off);
    while (n == -1 && errno == EINTR);
    return neg_errno(n);
}

static int job_fsync(void *arg)
{
    fs_req *r = arg;
    return neg_errno(fsync(r->fd));
}

static int job_stat(void *arg)
{
    fs_req *r = arg;
    return neg_errno(stat(r->path, r->st));
}

static int job_fstat(void *arg)
{
    fs_req *r = arg;
    return neg_errno(fstat(r->fd, r->st));
}

static int job_unlink(void *arg)
{
    fs_req *r = arg;
    return neg_errno(unlink(r->path));
}

static int job_rename(void *arg)
{
    fs_req *r = arg;
    return neg_errno(rename(r->path, r->path2));
}

static int job_mkdir(void *arg)
{
    fs_req *r = arg;
    return neg_errno(mkdir(r->path, r->mode));
}

/* ---- ring operations ---------------------------------------------------- */

/* Run a file system call as a ring operation. -ENOTSUP (or CIO_ENOTASK)
 * when the backend cannot: the caller then uses the pool. The task waits
 * for the completion even when cancelled, so the paths and buffers on
 * its stack stay valid while the kernel uses them. */
static int ring_run(cio__op *op)
{
    op->file = true;
    int rc = (int)cio__op_run(op);
    /* A call that blocked on a kernel worker (a FIFO's open) and that
     * the cancellation interrupted there: it had no effect. The worker
     * may pass on the kernel's internal restart codes (ERESTARTSYS is
     * 512, up to ERESTART_RESTARTBLOCK, 516). A close is never redone. */
    if (op->cancel_sent && op->kind != CIO__OP_CLOSE &&
        (rc == -EINTR || (rc <= -512 && rc >= -516)))
        rc = -ECANCELED;
    return rc;
}

static bool ring_fallback(int rc)
{
    return rc == -ENOTSUP || rc == CIO_ENOTASK;
}

static struct timespec ts_of(const struct statx_timestamp *t)
{
    return (struct timespec){.tv_sec = t->tv_sec, .tv_nsec = t->tv_nsec};
}

/* statx(2) of `path` relative to `dfd` (with AT_EMPTY_PATH: `dfd`
 * itself) into `*st`, as stat(2) would fill it. */
static int ring_stat(int dfd, const char *path, int flags, struct stat *st)
{
    struct statx sx;
    cio__op op = {.kind = CIO__OP_STATX, .fd = dfd, .path = path,
                  .flags = flags, .mode = STATX_BASIC_STATS, .buf = &sx};
    int rc = ring_run(&op);
    if (rc < 0)
        return rc;
    memset(st, 0, sizeof *st);
    st->st_dev = makedev(sx.stx_dev_major, sx.stx_dev_minor);
    st->st_ino = sx.stx_ino;
    st->st_mode = sx.stx_mode;
    st->st_nlink = sx.stx_nlink;
    st->st_uid = sx.stx_uid;
    st->st_gid = sx.stx_gid;
    st->st_rdev = makedev(sx.stx_rdev_major, sx.stx_rdev_minor);
    st->st_size = (off_t)sx.stx_size;
    st->st_blksize = (blksize_t)sx.stx_blksize;
    st->st_blocks = (blkcnt_t)sx.stx_blocks;
    st->st_atim = ts_of(&sx.stx_atime);
    st->st_mtim = ts_of(&sx.stx_mtime);
    st->st_ctim = ts_of(&sx.stx_ctime);
    return 0;
}

/* ---- public calls ------------------------------------------------------- */

/* open(2) on the ring; -ENOTSUP to use the pool instead. io_uring first
 * tries an open inline as if O_NONBLOCK were given (only O_CREAT, O_TRUNC
 * and O_TMPFILE opens go straight to a kernel worker, which blocks as
 * open(2) does): a FIFO then opens for reading without waiting for a
 * writer, and for writing fails with ENXIO instead of waiting for a
 * reader. Such opens are redone on the pool, with open(2)'s semantics. */
static int ring_open(const char *path, int flags, mode_t mode)
{
    cio__op op = {.kind = CIO__OP_OPEN, .fd = -1, .path = path,
                  .flags = flags | O_CLOEXEC, .mode = mode};
    int rc = ring_run(&op);
    bool may_wait = !(flags & (O_NONBLOCK | O_CREAT | O_TRUNC | O_TMPFILE)) &&
                    (flags & O_ACCMODE) != O_RDWR;
    if (!may_wait)
        return rc;
    if (rc == -ENXIO)
        return -ENOTSUP;
    struct stat st;
    if (rc >= 0 && fstat(rc, &st) == 0 && S_ISFIFO(st.st_mode)) {
        close(rc);
        return -ENOTSUP;
    }
    return rc;
}

int cio_file_open(int *fd, const char *path, int flags, mode_t mode)
{
    if (fd == NULL || path == NULL)
        return -EINVAL;
    int rc = ring_open(path, flags, mode);
    if (ring_fallback(rc)) {
        fs_req r = {.path = path, .flags = flags, .mode = mode};
        rc = submit(job_open, &r);
    }
    if (rc < 0)
        return rc;
    *fd = rc;
    return 0;
}

int cio_file_close(int fd)
{
    if (fd < 0)
        return -EBADF;
    cio_loop *l = cio__loop;
    if (l && l->backend)
        l->bops->closing(l->backend, fd); /* wake anyone waiting on it */
    fs_req r = {.fd = fd};
    cio__op op = {.kind = CIO__OP_CLOSE, .fd = fd};
    int rc = ring_run(&op);
    if (ring_fallback(rc))
        rc = submit(job_close, &r);
    /* close(2) itself never says ECANCELED or EAGAIN, and CIO_ENOTASK or
     * -ENOMEM mean no job ran: in each case the fd is still open. */
    if (rc == -ECANCELED || rc == -EAGAIN || rc == -ENOMEM ||
        rc == CIO_ENOTASK) {
        int crc = job_close(&r);
        if (rc != -ECANCELED)
            rc = crc;
    }
    return rc;
}

/* On io_uring the read or write is a ring operation (native, no thread);
 * elsewhere, or where the kernel lacks it, a job on the files pool.
 * `off` -1 means the current position. */
static ssize_t rw(cio_task_fn job, int kind, int fd, void *buf, size_t n,
                  off_t off)
{
    if (fd < 0)
        return -EBADF;
    if (buf == NULL)
        return -EINVAL;
    if (n > MAX_RW)
        n = MAX_RW;
    cio__op op = {.kind = kind, .fd = fd, .buf = buf, .len = n, .off = off,
                  .file = true};
    ssize_t rc = cio__op_run(&op);
    if (rc != -ENOTSUP && rc != CIO_ENOTASK)
        return rc;
    fs_req r = {.fd = fd, .buf = buf, .n = n, .off = off < 0 ? 0 : off};
    return submit(job, &r);
}

ssize_t cio_file_read(int fd, void *buf, size_t n)
{
    return rw(job_read, CIO__OP_READ, fd, buf, n, -1);
}

ssize_t cio_file_write(int fd, const void *buf, size_t n)
{
    return rw(job_write, CIO__OP_WRITE, fd, (void *)buf, n, -1);
}

ssize_t cio_file_pread(int fd, void *buf, size_t n, off_t offset)
{
    if (offset < 0)
        return -EINVAL;
    return rw(job_pread, CIO__OP_READ, fd, buf, n, offset);
}

ssize_t cio_file_pwrite(int fd, const void *buf, size_t n, off_t offset)
{
    if (offset < 0)
        return -EINVAL;
    return rw(job_pwrite, CIO__OP_WRITE, fd, (void *)buf, n, offset);
}

int cio_file_fsync(int fd)
{
    if (fd < 0)
        return -EBADF;
    cio__op op = {.kind = CIO__OP_FSYNC, .fd = fd};
    int rc = ring_run(&op);
    if (!ring_fallback(rc))
        return rc;
    fs_req r = {.fd = fd};
    return submit(job_fsync, &r);
}

int cio_file_stat(const char *path, struct stat *st)
{
    if (path == NULL || st == NULL)
        return -EINVAL;
    int rc = ring_stat(AT_FDCWD, path, 0, st);
    if (!ring_fallback(rc))
        return rc;
    fs_req r = {.path = path, .st = st};
    return submit(job_stat, &r);
}

int cio_file_fstat(int fd, struct stat *st)
{
    if (st == NULL)
        return -EINVAL;
    if (fd < 0)
        return -EBADF;
    int rc = ring_stat(fd, "", AT_EMPTY_PATH, st);
    if (!ring_fallback(rc))
        return rc;
    fs_req r = {.fd = fd, .st = st};
    return submit(job_fstat, &r);
}

int cio_file_unlink(const char *path)
{
    if (path == NULL)
        return -EINVAL;
    cio__op op = {.kind = CIO__OP_UNLINK, .fd = -1, .path = path};
    int rc = ring_run(&op);
    if (!ring_fallback(rc))
        return rc;
    fs_req r = {.path = path};
    return submit(job_unlink, &r);
}

int cio_file_rename(const char *from, const char *to)
{
    if (from == NULL || to == NULL)
        return -EINVAL;
    cio__op op = {.kind = CIO__OP_RENAME, .fd = -1, .path = from,
                  .path2 = to};
    int rc = ring_run(&op);
    if (!ring_fallback(rc))
        return rc;
    fs_req r = {.path = from, .path2 = to};
    return submit(job_rename, &r);
}

int cio_file_mkdir(const char *path, mode_t mode)
{
    if (path == NULL)
        return -EINVAL;
    cio__op op = {.kind = CIO__OP_MKDIR, .fd = -1, .path = path,
                  .mode = mode};
    int rc = ring_run(&op);
    if (!ring_fallback(rc))
        return rc;
    fs_req r = {.path = path, .mode = mode};
    return submit(job_mkdir, &r);
}

/* ---- read_all ----------------------------------------------------------- */

/* A growing buffer of user memory (plain malloc: it is handed to the
 * caller, who frees it with free(3)). One byte is kept for the NUL. */
typedef struct slurp {
    char *buf;
    size_t len, cap, max;
} slurp;

/* Double the room, up to `max`, which is not reached yet. */
static int slurp_grow(slurp *s)
{
    size_t want = s->cap - 1 < s->max / 2 ? 2 * (s->cap - 1) : s->max;
    char *b = realloc(s->buf, want + 1);
    if (b == NULL)
        return -ENOMEM;
    s->buf = b;
    s->cap = want + 1;
    return 0;
}

/* At `max` bytes: the file may still end exactly there. */
static int slurp_probe_end(int fd)
{
    char c;
    ssize_t n = cio_file_read(fd, &c, 1);
    return n < 0 ? (int)n : n > 0 ? -EFBIG : 0;
}

static int slurp_fd(int fd, slurp *s)
{
    for (;;) {
        if (s->len == s->cap - 1) {
            if (s->len == s->max)
                return slurp_probe_end(fd);
            int rc = slurp_grow(s);
            if (rc < 0)
                return rc;
        }
        size_t room = s->cap - 1 - s->len;
        ssize_t n = cio_file_read(fd, s->buf + s->len,
                                  room < READ_ALL_CHUNK ? room
                                                        : READ_ALL_CHUNK);
        if (n <= 0)
            return (int)n;
        s->len += (size_t)n;
    }
}

/* Size the first buffer from fstat: files in /proc and /sys say 0. */
static int slurp_start(int fd, slurp *s)
{
    struct stat st;
    int rc = cio_file_fstat(fd, &st);
    if (rc < 0)
        return rc;
    if (S_ISDIR(st.st_mode))
        return -EISDIR;
    size_t size = st.st_size > 0 ? (size_t)st.st_size : 4096;
    if (st.st_size > 0 && (uintmax_t)st.st_size > s->max)
        return -EFBIG;
    if (size > s->max)
        size = s->max;
    s->buf = malloc(size + 1);
    if (s->buf == NULL)
        return -ENOMEM;
    s->cap = size + 1;
    return 0;
}

int cio_file_read_all(const char *path, char **data, size_t *len,
                      size_t max)
{
    if (path == NULL || data == NULL || len == NULL || max == 0)
        return -EINVAL;
    if (max > SIZE_MAX / 2)
        max = SIZE_MAX / 2; /* "no limit": keep cap + 1 from overflowing */
    int fd;
    int rc = cio_file_open(&fd, path, O_RDONLY, 0);
    if (rc < 0)
        return rc;
    slurp s = {.max = max};
    rc = slurp_start(fd, &s);
    if (rc == 0)
        rc = slurp_fd(fd, &s);
    int crc = cio_file_close(fd);
    if (rc == 0 && crc < 0)
        rc = crc;
    if (rc < 0) {
        free(s.buf);
        return rc;
    }
    s.buf[s.len] = '\0';
    *data = s.buf;
    *len = s.len;
    return 0;
}
