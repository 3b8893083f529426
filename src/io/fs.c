/* Files on the executor: each operation is one small job run on a thread
 * of the loop's CIO_POOL_FILES pool, so that a backend with native file
 * I/O can replace them one by one behind the same public calls.
 *
 * A request lives on the stack of the task that waits for it; the
 * executor guarantees the job is over (or was never started) when
 * cio_to_thread_pool returns, which is what makes that safe. */
#include <fcntl.h>
#include <stdlib.h>
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

/* ---- public calls ------------------------------------------------------- */

int cio_file_open(int *fd, const char *path, int flags, mode_t mode)
{
    if (fd == NULL || path == NULL)
        return -EINVAL;
    fs_req r = {.path = path, .flags = flags, .mode = mode};
    int rc = submit(job_open, &r);
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
    int rc = submit(job_close, &r);
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
    fs_req r = {.fd = fd};
    return submit(job_fsync, &r);
}

int cio_file_stat(const char *path, struct stat *st)
{
    if (path == NULL || st == NULL)
        return -EINVAL;
    fs_req r = {.path = path, .st = st};
    return submit(job_stat, &r);
}

int cio_file_fstat(int fd, struct stat *st)
{
    if (st == NULL)
        return -EINVAL;
    if (fd < 0)
        return -EBADF;
    fs_req r = {.fd = fd, .st = st};
    return submit(job_fstat, &r);
}

int cio_file_unlink(const char *path)
{
    if (path == NULL)
        return -EINVAL;
    fs_req r = {.path = path};
    return submit(job_unlink, &r);
}

int cio_file_rename(const char *from, const char *to)
{
    if (from == NULL || to == NULL)
        return -EINVAL;
    fs_req r = {.path = from, .path2 = to};
    return submit(job_rename, &r);
}

int cio_file_mkdir(const char *path, mode_t mode)
{
    if (path == NULL)
        return -EINVAL;
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
