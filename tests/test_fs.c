/* Files: ring operations on io_uring, the executor's files pool on
 * epoll (and on io_uring with CIO_URING_OPS=none). Each test works in its
 * own directory under /tmp, removed afterwards. */
#include <fcntl.h>
#include <ftw.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "test.h"

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

/* FS_TEST(name) { ... } runs its body with `dir`, a fresh directory. */
#define FS_TEST(name)                                                 \
    static int fs_body_##name(const char *dir);                       \
    TEST_REALTIME(name)                                               \
    {                                                                 \
        char dir[] = "/tmp/cio-fs-XXXXXX";                            \
        if (mkdtemp(dir) == NULL)                                     \
            TEST_FAIL_("mkdtemp: %s", strerror(errno));               \
        int rc_ = fs_body_##name(dir);                                \
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);                \
        return rc_;                                                   \
    }                                                                 \
    static int fs_body_##name(const char *dir)

/* Whether `kind` runs on the ring here rather than on the pool. */
static bool native(int kind)
{
    cio_loop *l = cio__loop;
    return l->bops->supports && l->bops->supports(l->backend, kind);
}

static const char *in(char *buf, const char *dir, const char *name)
{
    snprintf(buf, 256, "%s/%s", dir, name);
    return buf;
}

/* Create `path` holding `n` bytes of a pattern, through cio. */
static int make_file(const char *path, size_t n)
{
    int fd;
    int rc = cio_file_open(&fd, path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (rc < 0)
        return rc;
    char buf[4096];
    for (size_t off = 0; off < n && rc >= 0;) {
        size_t k = n - off < sizeof buf ? n - off : sizeof buf;
        for (size_t i = 0; i < k; i++)
            buf[i] = (char)('a' + (off + i) % 26);
        ssize_t w = cio_file_write(fd, buf, k);
        rc = w < 0 ? (int)w : 0;
        off += w > 0 ? (size_t)w : 0;
    }
    int crc = cio_file_close(fd);
    return rc < 0 ? rc : crc;
}

FS_TEST(fs_write_then_read_round_trip)
{
    char p[256];
    int fd;
    ASSERT_OK(cio_file_open(&fd, in(p, dir, "a.txt"),
                            O_WRONLY | O_CREAT | O_TRUNC, 0600));
    ASSERT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    ASSERT_EQ(11, cio_file_write(fd, "hello world", 11));
    ASSERT_OK(cio_file_fsync(fd));
    ASSERT_OK(cio_file_close(fd));

    ASSERT_OK(cio_file_open(&fd, p, O_RDONLY, 0));
    ASSERT_TRUE(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    char buf[32];
    ASSERT_EQ(5, cio_file_read(fd, buf, 5));
    ASSERT_TRUE(memcmp(buf, "hello", 5) == 0);
    ASSERT_EQ(6, cio_file_read(fd, buf, sizeof buf));
    ASSERT_TRUE(memcmp(buf, " world", 6) == 0);
    ASSERT_EQ(0, cio_file_read(fd, buf, sizeof buf));
    struct stat st;
    ASSERT_OK(cio_file_fstat(fd, &st));
    ASSERT_EQ(11, st.st_size);
    /* Writing to a read-only fd is the kernel's error, passed on. */
    ASSERT_EQ(-EBADF, cio_file_write(fd, "x", 1));
    ASSERT_OK(cio_file_close(fd));
    ASSERT_EQ(-EBADF, cio_file_fstat(fd, &st));
    return 0;
}

FS_TEST(fs_pread_pwrite_at_offsets)
{
    char p[256];
    int fd;
    ASSERT_OK(cio_file_open(&fd, in(p, dir, "b.bin"),
                            O_RDWR | O_CREAT | O_TRUNC, 0600));
    ASSERT_EQ(3, cio_file_pwrite(fd, "abc", 3, 100));
    ASSERT_EQ(2, cio_file_pwrite(fd, "xy", 2, 0));
    struct stat st;
    ASSERT_OK(cio_file_fstat(fd, &st));
    ASSERT_EQ(103, st.st_size);
    char buf[16];
    ASSERT_EQ(3, cio_file_pread(fd, buf, sizeof buf, 100));
    ASSERT_TRUE(memcmp(buf, "abc", 3) == 0);
    ASSERT_EQ(4, cio_file_pread(fd, buf, 4, 50));
    ASSERT_TRUE(memcmp(buf, "\0\0\0\0", 4) == 0);
    ASSERT_EQ(0, cio_file_pread(fd, buf, sizeof buf, 1000));
    /* The current offset did not move: a plain read starts at 0. */
    ASSERT_EQ(2, cio_file_read(fd, buf, 2));
    ASSERT_TRUE(memcmp(buf, "xy", 2) == 0);
    ASSERT_EQ(-EINVAL, cio_file_pread(fd, buf, 1, -1));
    ASSERT_EQ(-EINVAL, cio_file_pwrite(fd, buf, 1, -1));
    ASSERT_OK(cio_file_close(fd));
    return 0;
}

FS_TEST(fs_stat_reports_sizes_and_kinds)
{
    char p[256], q[256];
    ASSERT_OK(make_file(in(p, dir, "c.dat"), 12345));
    struct stat st;
    ASSERT_OK(cio_file_stat(p, &st));
    ASSERT_EQ(12345, st.st_size);
    ASSERT_TRUE(S_ISREG(st.st_mode));
    ASSERT_OK(cio_file_stat(dir, &st));
    ASSERT_TRUE(S_ISDIR(st.st_mode));
    ASSERT_EQ(-ENOENT, cio_file_stat(in(q, dir, "missing"), &st));
    ASSERT_EQ(-ENOTDIR, cio_file_stat(in(q, dir, "c.dat/x"), &st));
    ASSERT_OK(make_file(p, 0));
    ASSERT_OK(cio_file_stat(p, &st));
    ASSERT_EQ(0, st.st_size);
    return 0;
}

FS_TEST(fs_names_rename_unlink_mkdir_and_their_errors)
{
    char a[256], b[256], d[256], x[256];
    ASSERT_OK(cio_file_mkdir(in(d, dir, "sub"), 0755));
    ASSERT_EQ(-EEXIST, cio_file_mkdir(d, 0755));
    ASSERT_EQ(-ENOENT, cio_file_mkdir(in(x, dir, "no/such"), 0755));
    ASSERT_OK(make_file(in(a, dir, "a"), 10));
    ASSERT_OK(cio_file_rename(a, in(b, dir, "sub/b")));
    struct stat st;
    ASSERT_EQ(-ENOENT, cio_file_stat(a, &st));
    ASSERT_OK(cio_file_stat(b, &st));
    ASSERT_EQ(10, st.st_size);
    ASSERT_EQ(-ENOENT, cio_file_rename(a, b));
    int fd;
    ASSERT_EQ(-EEXIST,
              cio_file_open(&fd, b, O_WRONLY | O_CREAT | O_EXCL, 0600));
    ASSERT_EQ(-ENOENT, cio_file_open(&fd, a, O_RDONLY, 0));
    ASSERT_EQ(-EISDIR, cio_file_unlink(d));
    ASSERT_OK(cio_file_unlink(b));
    ASSERT_EQ(-ENOENT, cio_file_unlink(b));
    ASSERT_EQ(-ENOENT, cio_file_stat(b, &st));
    return 0;
}

FS_TEST(fs_read_all_sizes_limits_and_errors)
{
    char p[256], e[256];
    ASSERT_OK(make_file(in(p, dir, "f"), 10000));
    char *data = NULL;
    size_t len = 0;
    ASSERT_OK(cio_file_read_all(p, &data, &len, 1 << 20));
    ASSERT_EQ(10000, len);
    ASSERT_EQ(0, data[len]);
    for (size_t i = 0; i < len; i++)
        if (data[i] != (char)('a' + i % 26))
            TEST_FAIL_("byte %zu differs", i);
    free(data);
    /* Exactly at the limit is fine; one byte over is not. */
    ASSERT_OK(cio_file_read_all(p, &data, &len, 10000));
    ASSERT_EQ(10000, len);
    free(data);
    data = NULL;
    ASSERT_EQ(-EFBIG, cio_file_read_all(p, &data, &len, 9999));
    ASSERT_TRUE(data == NULL);
    ASSERT_OK(make_file(in(e, dir, "empty"), 0));
    ASSERT_OK(cio_file_read_all(e, &data, &len, 100));
    ASSERT_EQ(0, len);
    ASSERT_STR_EQ("", data);
    free(data);
    ASSERT_EQ(-ENOENT, cio_file_read_all(in(e, dir, "nope"), &data, &len,
                                         100));
    ASSERT_EQ(-EISDIR, cio_file_read_all(dir, &data, &len, 100));
    ASSERT_EQ(-EINVAL, cio_file_read_all(p, &data, &len, 0));
    /* /proc files say size 0: the buffer grows as the data comes. */
    ASSERT_OK(cio_file_read_all("/proc/self/status", &data, &len, 1 << 20));
    ASSERT_TRUE(len > 0 && strlen(data) == len);
    ASSERT_TRUE(strstr(data, "Name:") != NULL);
    free(data);
    ASSERT_EQ(-EFBIG, cio_file_read_all("/proc/self/status", &data, &len,
                                        16));
    return 0;
}

typedef struct ticker {
    atomic_bool stop;
    long ticks;
    int64_t max_gap;
} ticker;

static int tick(void *arg)
{
    ticker *t = arg;
    int64_t last = cio_now();
    while (!atomic_load(&t->stop)) {
        int rc = cio_sleep(CIO_MSEC);
        if (rc < 0)
            return rc;
        int64_t now = cio_now();
        if (now - last > t->max_gap)
            t->max_gap = now - last;
        last = now;
        t->ticks++;
    }
    return 0;
}

FS_TEST(fs_big_file_in_chunks_leaves_the_loop_running)
{
    enum { SIZE = 16 << 20, CHUNK = 64 << 10 };
    char p[256];
    char *chunk = malloc(CHUNK);
    ASSERT_TRUE(chunk != NULL);
    int fd;
    ASSERT_OK(cio_file_open(&fd, in(p, dir, "big"),
                            O_WRONLY | O_CREAT | O_TRUNC, 0600));
    for (size_t off = 0; off < SIZE; off += CHUNK) {
        memset(chunk, (int)(off / CHUNK), CHUNK);
        ASSERT_EQ(CHUNK, cio_file_write(fd, chunk, CHUNK));
    }
    ASSERT_OK(cio_file_close(fd));

    ticker tk = {.ticks = 0};
    atomic_init(&tk.stop, false);
    cio_task *t;
    ASSERT_OK(cio_spawn(&t, tick, &tk));
    int64_t t0 = cio_now();
    ASSERT_OK(cio_file_open(&fd, p, O_RDONLY, 0));
    size_t total = 0;
    ssize_t n;
    while ((n = cio_file_read(fd, chunk, CHUNK)) > 0) {
        if (chunk[0] != (char)(total / CHUNK))
            TEST_FAIL_("chunk at %zu differs", total);
        total += (size_t)n;
    }
    ASSERT_EQ(0, n);
    ASSERT_OK(cio_file_close(fd));
    int64_t elapsed = cio_now() - t0;
    atomic_store(&tk.stop, true);
    ASSERT_OK(cio_task_join(t));
    cio_task_free(t);
    free(chunk);
    ASSERT_EQ(SIZE, total);
    /* 256 reads went through the pool while the ticker kept running: it
     * ticked, and never waited much longer than its 1 ms between ticks
     * (the bound is loose for sanitizer builds on a busy machine). */
    ASSERT_TRUE(tk.ticks > 0);
    if (tk.max_gap > 250 * CIO_MSEC)
        TEST_FAIL_("the loop stalled for %" PRId64 " ms (read took %" PRId64
                   " ms, %ld ticks)",
                   tk.max_gap / CIO_MSEC, elapsed / CIO_MSEC, tk.ticks);
    return 0;
}

/* ---- cancellation -------------------------------------------------------- */

typedef struct opener {
    const char *path;
    int fd;
    int flags;
} opener;

static int open_fifo(void *arg)
{
    opener *o = arg;
    return cio_file_open(&o->fd, o->path, O_RDONLY, 0);
}

static int make_dir(void *arg)
{
    return cio_file_mkdir(arg, 0755);
}

enum { NFIFO = 8 }; /* twice the files pool's threads */

/* Fill the files pool with FIFO opens, which block until a writer comes:
 * the first ones run on its threads, the rest wait in its queue. */
static int saturate(const char *dir, char paths[NFIFO][256],
                    opener ops[NFIFO], cio_task *tasks[NFIFO])
{
    for (int i = 0; i < NFIFO; i++) {
        snprintf(paths[i], 256, "%s/fifo%d", dir, i);
        if (mkfifo(paths[i], 0600) != 0)
            return -errno;
        ops[i] = (opener){paths[i], -1, O_RDONLY};
        int rc = cio_spawn(&tasks[i], open_fifo, &ops[i]);
        if (rc < 0)
            return rc;
        rc = cio_sleep(5 * CIO_MSEC); /* keep the submission order */
        if (rc < 0)
            return rc;
    }
    return cio_sleep(50 * CIO_MSEC);
}

FS_TEST(fs_cancel_drops_a_queued_op_and_keeps_a_started_one)
{
    if (native(CIO__OP_MKDIR))
        CIO_TEST_SKIP("mkdir runs on the ring here, not on the pool");
    char paths[NFIFO][256];
    opener ops[NFIFO];
    cio_task *tasks[NFIFO];
    ASSERT_OK(saturate(dir, paths, ops, tasks));

    /* Bad input is refused at once, without queueing behind them. */
    struct stat st;
    ASSERT_EQ(-EINVAL, cio_file_stat(NULL, &st));
    ASSERT_EQ(-EINVAL, cio_file_read(3, NULL, 1));
    ASSERT_EQ(-EBADF, cio_file_read(-1, &st, 1));

    /* A queued mkdir is dropped: cancelled, it never runs. */
    char d[256];
    cio_task *mk;
    ASSERT_OK(cio_spawn(&mk, make_dir, (void *)in(d, dir, "never")));
    ASSERT_OK(cio_sleep(10 * CIO_MSEC));
    ASSERT_OK(cio_task_cancel(mk));
    ASSERT_EQ(-ECANCELED, cio_task_join(mk));
    cio_task_free(mk);
    /* So is the last FIFO open, still queued. */
    ASSERT_OK(cio_task_cancel(tasks[NFIFO - 1]));
    ASSERT_EQ(-ECANCELED, cio_task_join(tasks[NFIFO - 1]));
    ASSERT_EQ(-1, ops[NFIFO - 1].fd);
    /* The first one runs on a thread: cancelled, it still completes. */
    ASSERT_OK(cio_task_cancel(tasks[0]));

    /* Writers let the opens through. */
    int writers[NFIFO];
    for (int i = 0; i < NFIFO; i++) {
        writers[i] = open(paths[i], O_RDWR | O_NONBLOCK | O_CLOEXEC);
        ASSERT_TRUE(writers[i] >= 0);
    }
    for (int i = 0; i < NFIFO - 1; i++) {
        ASSERT_EQ(0, cio_task_join(tasks[i]));
        ASSERT_TRUE(ops[i].fd >= 0);
        ASSERT_OK(cio_file_close(ops[i].fd));
    }
    for (int i = 0; i < NFIFO; i++) {
        close(writers[i]);
        cio_task_free(tasks[i]);
    }
    ASSERT_EQ(-ENOENT, cio_file_stat(d, &st));
    return 0;
}

FS_TEST(fs_cancelled_close_still_releases_the_fd)
{
    char p[256];
    ASSERT_OK(make_file(in(p, dir, "c"), 1));
    int fd;
    ASSERT_OK(cio_file_open(&fd, p, O_RDONLY, 0));
    cio_scope sc;
    ASSERT_OK(cio_scope_enter(&sc, CIO_NEVER, 0));
    ASSERT_OK(cio_scope_cancel(&sc));
    struct stat st;
    ASSERT_EQ(-ECANCELED, cio_file_fstat(fd, &st));
    ASSERT_EQ(-ECANCELED, cio_file_close(fd));
    ASSERT_EQ(-ECANCELED, cio_scope_exit(&sc));
    ASSERT_EQ(-1, fcntl(fd, F_GETFD));
    ASSERT_EQ(EBADF, errno);
    return 0;
}

FS_TEST(fs_deadline_passes_while_queued)
{
    if (native(CIO__OP_MKDIR))
        CIO_TEST_SKIP("mkdir runs on the ring here, not on the pool");
    char paths[NFIFO][256];
    opener ops[NFIFO];
    cio_task *tasks[NFIFO];
    ASSERT_OK(saturate(dir, paths, ops, tasks));
    char d[256];
    cio_scope sc;
    int64_t t0 = cio_now();
    ASSERT_OK(cio_scope_enter(&sc, cio_deadline_after(20 * CIO_MSEC), 0));
    ASSERT_EQ(-ECANCELED, cio_file_mkdir(in(d, dir, "late"), 0755));
    ASSERT_EQ(-ETIMEDOUT, cio_scope_exit(&sc));
    ASSERT_TRUE(cio_now() - t0 < 2 * CIO_SEC);
    int writers[NFIFO];
    for (int i = 0; i < NFIFO; i++) {
        writers[i] = open(paths[i], O_RDWR | O_NONBLOCK | O_CLOEXEC);
        ASSERT_TRUE(writers[i] >= 0);
    }
    for (int i = 0; i < NFIFO; i++) {
        ASSERT_EQ(0, cio_task_join(tasks[i]));
        ASSERT_OK(cio_file_close(ops[i].fd));
        close(writers[i]);
        cio_task_free(tasks[i]);
    }
    struct stat st;
    ASSERT_EQ(-ENOENT, cio_file_stat(d, &st));
    return 0;
}

/* ---- both backends: the same results, the same cancellation ------------- */

static bool exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

FS_TEST(fs_stat_matches_the_system_call)
{
    char p[256];
    ASSERT_OK(make_file(in(p, dir, "s"), 5000));
    struct stat a, b;
    ASSERT_OK(cio_file_stat(p, &a));
    ASSERT_EQ(0, stat(p, &b));
    int fd;
    ASSERT_OK(cio_file_open(&fd, p, O_RDONLY, 0));
    struct stat c;
    ASSERT_OK(cio_file_fstat(fd, &c));
    ASSERT_OK(cio_file_close(fd));
    const struct stat *v[2] = {&a, &c};
    for (int i = 0; i < 2; i++) {
        ASSERT_EQ(b.st_dev, v[i]->st_dev);
        ASSERT_EQ(b.st_ino, v[i]->st_ino);
        ASSERT_EQ(b.st_mode, v[i]->st_mode);
        ASSERT_EQ(b.st_nlink, v[i]->st_nlink);
        ASSERT_EQ(b.st_uid, v[i]->st_uid);
        ASSERT_EQ(b.st_gid, v[i]->st_gid);
        ASSERT_EQ(b.st_size, v[i]->st_size);
        ASSERT_EQ(b.st_blocks, v[i]->st_blocks);
        ASSERT_EQ(b.st_blksize, v[i]->st_blksize);
        ASSERT_EQ(b.st_mtim.tv_sec, v[i]->st_mtim.tv_sec);
        ASSERT_EQ(b.st_mtim.tv_nsec, v[i]->st_mtim.tv_nsec);
        ASSERT_EQ(b.st_ctim.tv_nsec, v[i]->st_ctim.tv_nsec);
    }
    /* A character device: its rdev comes through. */
    ASSERT_OK(cio_file_stat("/dev/null", &a));
    ASSERT_EQ(0, stat("/dev/null", &b));
    ASSERT_TRUE(S_ISCHR(a.st_mode));
    ASSERT_EQ(b.st_rdev, a.st_rdev);
    return 0;
}

FS_TEST(fs_errors_are_the_same_errno_on_both_backends)
{
    char f[256], d[256], x[256], y[256];
    ASSERT_OK(make_file(in(f, dir, "f"), 1));
    ASSERT_OK(cio_file_mkdir(in(d, dir, "d"), 0700));
    ASSERT_OK(make_file(in(x, dir, "d/in"), 1));
    int fd = -1;
    struct stat st;
    /* ENOENT */
    ASSERT_EQ(-ENOENT, cio_file_open(&fd, in(x, dir, "no"), O_RDONLY, 0));
    ASSERT_EQ(-ENOENT, cio_file_stat(x, &st));
    ASSERT_EQ(-ENOENT, cio_file_unlink(x));
    ASSERT_EQ(-ENOENT, cio_file_rename(x, in(y, dir, "y")));
    ASSERT_EQ(-ENOENT, cio_file_mkdir(in(x, dir, "no/sub"), 0700));
    /* EEXIST */
    ASSERT_EQ(-EEXIST, cio_file_open(&fd, f, O_WRONLY | O_CREAT | O_EXCL,
                                     0600));
    ASSERT_EQ(-EEXIST, cio_file_mkdir(f, 0700));
    ASSERT_EQ(-EEXIST, cio_file_mkdir(d, 0700));
    /* ENOTDIR: a file used as a directory. */
    ASSERT_EQ(-ENOTDIR, cio_file_open(&fd, in(x, dir, "f/a"), O_RDONLY, 0));
    ASSERT_EQ(-ENOTDIR, cio_file_stat(x, &st));
    ASSERT_EQ(-ENOTDIR, cio_file_unlink(x));
    ASSERT_EQ(-ENOTDIR, cio_file_mkdir(x, 0700));
    ASSERT_EQ(-ENOTDIR, cio_file_rename(x, in(y, dir, "y")));
    ASSERT_EQ(-ENOTDIR, cio_file_rename(d, f));
    ASSERT_EQ(-ENOTDIR, cio_file_open(&fd, f, O_RDONLY | O_DIRECTORY, 0));
    /* Others */
    ASSERT_EQ(-EISDIR, cio_file_open(&fd, d, O_WRONLY, 0));
    ASSERT_EQ(-EISDIR, cio_file_unlink(d));
    ASSERT_EQ(-EISDIR, cio_file_rename(f, d));
    ASSERT_EQ(-ENOENT, cio_file_rename(in(y, dir, "e"), d));
    ASSERT_OK(cio_file_mkdir(y, 0700));
    ASSERT_EQ(-ENOTEMPTY, cio_file_rename(y, d));
    ASSERT_EQ(-EBADF, cio_file_fsync(1000));
    ASSERT_EQ(-EBADF, cio_file_fstat(1000, &st));
    ASSERT_EQ(-EBADF, cio_file_close(1000));
    ASSERT_EQ(-1, fd);
    return 0;
}

typedef struct fs_call {
    int kind;
    const char *a, *b;
    int fd;
    int result;
} fs_call;

static int run_call(void *arg)
{
    fs_call *c = arg;
    struct stat st;
    switch (c->kind) {
    case CIO__OP_OPEN:
        c->fd = -1;
        return c->result = cio_file_open(&c->fd, c->a,
                                         O_WRONLY | O_CREAT | O_EXCL, 0600);
    case CIO__OP_CLOSE:
        return c->result = cio_file_close(c->fd);
    case CIO__OP_FSYNC:
        return c->result = cio_file_fsync(c->fd);
    case CIO__OP_STATX:
        return c->result = cio_file_stat(c->a, &st);
    case CIO__OP_UNLINK:
        return c->result = cio_file_unlink(c->a);
    case CIO__OP_RENAME:
        return c->result = cio_file_rename(c->a, c->b);
    default:
        return c->result = cio_file_mkdir(c->a, 0700);
    }
}

/* The effect a call had, seen from outside: whether `a` and `b` exist
 * and, for close, whether the fd is still open. */
static int effect(const fs_call *c)
{
    return exists(c->a) | (c->b && exists(c->b)) << 1 |
           (c->kind == CIO__OP_CLOSE && fcntl(c->fd, F_GETFD) != -1) << 2;
}

static int check_call(fs_call *c, int before, int after_ok)
{
    int now = effect(c);
    if (c->result == -ECANCELED && c->kind == CIO__OP_CLOSE)
        return now == after_ok ? 0 : -1; /* the fd goes all the same */
    if (c->result == -ECANCELED)
        return now == before ? 0 : -1;
    if (c->result < 0)
        return -1;
    if (c->kind == CIO__OP_OPEN)
        close(c->fd);
    return now == after_ok ? 0 : -1;
}

/* Set up one call on fresh names; `*before`/`*after` are the effects it
 * must show when it did nothing / everything. */
static int prepare(fs_call *c, int kind, const char *dir, int i,
                   char *a, char *b, int *before, int *after)
{
    snprintf(a, 256, "%s/a%d", dir, i);
    snprintf(b, 256, "%s/b%d", dir, i);
    *c = (fs_call){.kind = kind, .a = a, .fd = -1};
    bool file = kind == CIO__OP_CLOSE || kind == CIO__OP_FSYNC ||
                kind == CIO__OP_STATX || kind == CIO__OP_UNLINK ||
                kind == CIO__OP_RENAME;
    if (file) {
        int fd = open(a, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        if (fd < 0)
            return -errno;
        if (kind == CIO__OP_CLOSE || kind == CIO__OP_FSYNC)
            c->fd = fd;
        else
            close(fd);
    }
    if (kind == CIO__OP_RENAME)
        c->b = b;
    *before = effect(c);
    switch (kind) {
    case CIO__OP_OPEN:
    case CIO__OP_MKDIR:
        *after = 1;
        break;
    case CIO__OP_CLOSE:
        *after = 1;
        break;
    case CIO__OP_UNLINK:
        *after = 0;
        break;
    case CIO__OP_RENAME:
        *after = 2;
        break;
    default:
        *after = *before;
    }
    return 0;
}

static const int all_kinds[] = {CIO__OP_OPEN,   CIO__OP_CLOSE,
                                CIO__OP_FSYNC,  CIO__OP_STATX,
                                CIO__OP_UNLINK, CIO__OP_RENAME,
                                CIO__OP_MKDIR};
enum { NKINDS = sizeof all_kinds / sizeof all_kinds[0] };

FS_TEST(fs_cancelled_before_it_starts_each_call_does_nothing)
{
    for (int k = 0; k < NKINDS; k++) {
        char a[256], b[256];
        fs_call c;
        int before, after;
        ASSERT_OK(prepare(&c, all_kinds[k], dir, k, a, b, &before, &after));
        cio_scope sc;
        ASSERT_OK(cio_scope_enter(&sc, CIO_NEVER, 0));
        ASSERT_OK(cio_scope_cancel(&sc));
        ASSERT_EQ(-ECANCELED, run_call(&c));
        ASSERT_EQ(-ECANCELED, cio_scope_exit(&sc));
        if (check_call(&c, before, after) != 0)
            TEST_FAIL_("kind %d: effect %d after a cancel", c.kind,
                       effect(&c));
        if (c.kind == CIO__OP_FSYNC)
            close(c.fd);
    }
    return 0;
}

/* Cancelled while in flight (on the ring, or queued or running on the
 * pool), each call has done all or nothing, and says which. */
FS_TEST(fs_cancelled_in_flight_each_call_is_all_or_nothing)
{
    enum { ROUNDS = 20 };
    int cancelled = 0;
    for (int k = 0; k < NKINDS; k++) {
        for (int i = 0; i < ROUNDS; i++) {
            char a[256], b[256];
            fs_call c;
            int before, after;
            ASSERT_OK(prepare(&c, all_kinds[k], dir, k * ROUNDS + i, a, b,
                              &before, &after));
            cio_task *t;
            ASSERT_OK(cio_spawn(&t, run_call, &c));
            /* Let it start: from the second round on, one turn later
             * each time (the submission goes with the next poll). */
            for (int y = 0; y < i % 3; y++)
                ASSERT_OK(cio_yield());
            ASSERT_OK(cio_task_cancel(t));
            cio_task_join(t);
            cio_task_free(t);
            if (check_call(&c, before, after) != 0)
                TEST_FAIL_("kind %d round %d: result %d, effect %d (%d/%d)",
                           c.kind, i, c.result, effect(&c), before, after);
            cancelled += c.result == -ECANCELED;
            if (c.kind == CIO__OP_FSYNC)
                close(c.fd);
        }
    }
    ASSERT_TRUE(cancelled > 0);
    return 0;
}

static int open_fifo_flags(void *arg)
{
    opener *o = arg;
    return cio_file_open(&o->fd, o->path, o->flags, 0600);
}

/* Opening a FIFO waits for the other side on both backends, as open(2)
 * does (io_uring's own open would not: see fs.c). */
FS_TEST(fs_fifo_open_waits_for_the_other_side)
{
    char p[256];
    ASSERT_EQ(0, mkfifo(in(p, dir, "fifo"), 0600));
    int modes[2] = {O_RDONLY, O_WRONLY};
    for (int i = 0; i < 2; i++) {
        opener o = {p, -1, modes[i]};
        cio_task *t;
        ASSERT_OK(cio_spawn(&t, open_fifo_flags, &o));
        ASSERT_OK(cio_sleep(20 * CIO_MSEC));
        ASSERT_TRUE(!cio_task_done(t));
        int peer = open(p, (i ? O_RDONLY : O_WRONLY) | O_NONBLOCK |
                               O_CLOEXEC);
        if (peer < 0) /* a writer needs a reader: use O_RDWR */
            peer = open(p, O_RDWR | O_CLOEXEC);
        ASSERT_TRUE(peer >= 0);
        ASSERT_EQ(0, cio_task_join(t));
        cio_task_free(t);
        ASSERT_TRUE(o.fd >= 0);
        if (i == 1) {
            ASSERT_EQ(2, cio_file_write(o.fd, "hi", 2));
            char b[2];
            ASSERT_EQ(2, read(peer, b, 2));
        }
        ASSERT_OK(cio_file_close(o.fd));
        close(peer);
    }
    return 0;
}

/* An open that blocks (a FIFO without a writer), cancelled: it returns
 * -ECANCELED with nothing opened (a kernel worker interrupted), or, when
 * it could not be stopped, completes once a writer comes and returns the
 * fd; never a descriptor left behind. O_CREAT makes the ring run it on a
 * kernel worker. */
FS_TEST(fs_blocked_open_cancelled_leaves_no_fd)
{
    char p[256];
    ASSERT_EQ(0, mkfifo(in(p, dir, "fifo"), 0600));
    int modes[2] = {O_RDONLY, O_RDONLY | O_CREAT};
    for (int i = 0; i < 2; i++) {
        opener o = {p, -1, modes[i]};
        cio_task *t;
        ASSERT_OK(cio_spawn(&t, open_fifo_flags, &o));
        ASSERT_OK(cio_sleep(20 * CIO_MSEC));
        ASSERT_OK(cio_task_cancel(t));
        ASSERT_OK(cio_sleep(20 * CIO_MSEC));
        int w = -1;
        if (!cio_task_done(t)) {
            /* Not stoppable where it runs: let it through. */
            w = open(p, O_RDWR | O_NONBLOCK | O_CLOEXEC);
            ASSERT_TRUE(w >= 0);
        }
        int rc = cio_task_join(t);
        cio_task_free(t);
        if (rc == -ECANCELED) {
            ASSERT_EQ(-1, o.fd);
        } else {
            ASSERT_EQ(0, rc);
            ASSERT_OK(cio_file_close(o.fd));
        }
        if (i == 1 && native(CIO__OP_OPEN))
            ASSERT_EQ(-ECANCELED, rc);
        if (w >= 0)
            close(w);
    }
    return 0;
}

/* ---- outside a task ------------------------------------------------------ */

static int off_loop(void *arg)
{
    int fd = *(int *)arg;
    struct stat st;
    if (cio_file_stat("/", &st) != CIO_ENOTASK)
        return -EPROTO;
    /* Closing works anywhere: the fd is released on this thread. */
    if (cio_file_close(fd) != 0)
        return -EPROTO;
    return fcntl(fd, F_GETFD) == -1 && errno == EBADF ? 0 : -EPROTO;
}

FS_TEST(fs_outside_a_task)
{
    char p[256];
    ASSERT_OK(make_file(in(p, dir, "x"), 1));
    int fd;
    ASSERT_OK(cio_file_open(&fd, p, O_RDONLY, 0));
    ASSERT_OK(cio_to_thread(off_loop, &fd));
    return 0;
}
