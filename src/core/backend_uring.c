/* The io_uring backend (liburing).
 *
 * Two kinds of requests share one ring: readiness watches (POLL_ADD, for
 * cio_fd_wait and everything built on it) and completion-based operations
 * (RECV, SEND, ACCEPT, CONNECT) that cio's socket calls submit directly.
 * Submissions are not sent one by one: they collect in the submission
 * queue and go to the kernel with the wait of the next loop turn, in one
 * io_uring_enter. What the running kernel supports is probed at start;
 * an operation it lacks falls back to a readiness watch plus the plain
 * syscall, per operation, so an old kernel degrades instead of breaking.
 *
 * user_data: a watch slot pointer with bit 0 set, an operation pointer
 * with bit 1 set, or 0 for requests whose completion is ignored (poll
 * removal, cancellation). */
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/utsname.h>

#include "internal.h"

#define RING_ENTRIES 4096
/* The provided buffers of multishot receives: one group per loop, made
 * at the first such receive (2 MiB of address space, touched as used).
 * 16 KiB rather than 4 KiB: an echo of 8 KiB messages ran 10-60% more
 * requests per second, 64-byte ones the same (bench/echo, 2 cores). */
#ifndef PBUF_COUNT
#define PBUF_COUNT 128u
#endif
#ifndef PBUF_SIZE
#define PBUF_SIZE 16384u
#endif
#define PBUF_GROUP 0
#define TAG_WATCH 1u
#define TAG_OP 2u

/* A watch's handle in the ring. It outlives an unwatched watch until the
 * kernel's completion for it arrives. */
typedef struct slot {
    cio__fdw *w; /* NULL once unwatched */
    struct slot *next_free;
    struct slot *next_all;
} slot;

typedef struct fdrec {
    cio__fdw *reader, *writer;
    cio__op *rop, *wop; /* operations in flight, by direction */
} fdrec;

struct cio__backend {
    cio_loop *loop;
    struct io_uring ring;
    fdrec *fds;
    size_t nfds;
    size_t waiting;
    slot *free_slots;
    slot *all_slots;
    bool has_op[CIO__OP_COUNT];
    /* Provided buffers: the ring of their descriptors and their memory
     * (one mapping), or NULL before the first multishot receive. */
    struct io_uring_buf_ring *pbr;
    char *pbufs;
    size_t pbr_size;
    /* SENDs of at least this many bytes go zero-copy (SEND_ZC); 0: never
     * (the default: see zc_threshold). */
    size_t zc_min;
    /* The kernel flags deferred completions in the ring (TASKRUN_FLAG). */
    bool taskrun_flag;
};

/* CIO_URING_OPS: as on a kernel without some opcodes (tests run the
 * per-operation fallbacks this way; benchmarks compare). "none" turns
 * every operation off; otherwise a comma-separated list of groups to turn
 * off: "nofs" (the file system calls: they go to the files pool),
 * "nomultishot" (multishot accept and receive), "norecvmulti"
 * (multishot receive only). */
static void disable_ops(cio__backend *b, const char *spec)
{
    if (spec == NULL)
        return;
    if (strcmp(spec, "none") == 0) {
        memset(b->has_op, 0, sizeof b->has_op);
        b->zc_min = 0;
        return;
    }
    static const struct {
        const char *name;
        int first, last;
    } groups[] = {
        {"nofs", CIO__OP_OPEN, CIO__OP_MKDIR},
        {"nomultishot", CIO__OP_ACCEPT_MULTI, CIO__OP_RECV_MULTI},
        {"norecvmulti", CIO__OP_RECV_MULTI, CIO__OP_RECV_MULTI},
    };
    for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++) {
        const char *p = strstr(spec, groups[i].name);
        size_t n = strlen(groups[i].name);
        if (p && (p == spec || p[-1] == ',') && (p[n] == ',' || !p[n]))
            for (int k = groups[i].first; k <= groups[i].last; k++)
                b->has_op[k] = false;
    }
}

/* CIO_URING_SEND_ZC=BYTES: a stream's SEND of at least BYTES goes
 * zero-copy (IORING_OP_SEND_ZC). Off by default: on loopback the kernel
 * copies anyway and the extra notification makes it slower (measured
 * with bench/zc); over a real NIC large sends may gain. */
static size_t zc_threshold(void)
{
    const char *v = getenv("CIO_URING_SEND_ZC");
    if (v == NULL || *v == '\0')
        return 0;
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    return *end == '\0' ? (size_t)n : 0;
}

/* Whether the running kernel is at least `major`.`minor`. */
static bool kernel_at_least(int major, int minor)
{
    struct utsname u;
    int ma, mi;
    if (uname(&u) != 0 || sscanf(u.release, "%d.%d", &ma, &mi) != 2)
        return false;
    return ma > major || (ma == major && mi >= minor);
}

/* The file system calls, each on its own opcode: a kernel that has
 * OPENAT but not MKDIRAT (5.6 to 5.14) runs mkdir on the files pool. */
static void probe_fs_ops(cio__backend *b, struct io_uring_probe *probe)
{
    static const struct {
        int kind, opcode;
    } fs_ops[] = {
        {CIO__OP_OPEN, IORING_OP_OPENAT},
        {CIO__OP_CLOSE, IORING_OP_CLOSE},
        {CIO__OP_FSYNC, IORING_OP_FSYNC},
        {CIO__OP_STATX, IORING_OP_STATX},
        {CIO__OP_UNLINK, IORING_OP_UNLINKAT},
        {CIO__OP_RENAME, IORING_OP_RENAMEAT},
        {CIO__OP_MKDIR, IORING_OP_MKDIRAT},
    };
    for (size_t i = 0; i < sizeof fs_ops / sizeof fs_ops[0]; i++)
        b->has_op[fs_ops[i].kind] =
            io_uring_opcode_supported(probe, fs_ops[i].opcode);
}

static int ur_init(cio_loop *l, cio__backend **out)
{
    cio__backend *b = cio__calloc(1, sizeof *b);
    if (b == NULL)
        return -ENOMEM;
    b->loop = l;
    struct io_uring_params p = {0};
    p.flags = IORING_SETUP_SUBMIT_ALL | IORING_SETUP_COOP_TASKRUN |
              IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN |
              IORING_SETUP_TASKRUN_FLAG;
    int rc = io_uring_queue_init_params(RING_ENTRIES, &b->ring, &p);
    b->taskrun_flag = rc == 0;
    if (rc < 0) {
        /* Older kernels: no single-issuer / deferred task work. */
        memset(&p, 0, sizeof p);
        rc = io_uring_queue_init_params(RING_ENTRIES, &b->ring, &p);
    }
    if (rc < 0) {
        cio__free(b);
        return rc;
    }
    struct io_uring_probe *probe = io_uring_get_probe_ring(&b->ring);
    if (probe) {
        b->has_op[CIO__OP_RECV] =
            io_uring_opcode_supported(probe, IORING_OP_RECV);
        b->has_op[CIO__OP_SEND] =
            io_uring_opcode_supported(probe, IORING_OP_SEND);
        b->has_op[CIO__OP_ACCEPT] =
            io_uring_opcode_supported(probe, IORING_OP_ACCEPT);
        b->has_op[CIO__OP_CONNECT] =
            io_uring_opcode_supported(probe, IORING_OP_CONNECT);
        b->has_op[CIO__OP_READ] =
            io_uring_opcode_supported(probe, IORING_OP_READ);
        b->has_op[CIO__OP_WRITE] =
            io_uring_opcode_supported(probe, IORING_OP_WRITE);
        probe_fs_ops(b, probe);
        /* Multishot accept came with 5.19, without an opcode of its
         * own to probe. */
        b->has_op[CIO__OP_ACCEPT_MULTI] =
            b->has_op[CIO__OP_ACCEPT] && kernel_at_least(5, 19);
        if (io_uring_opcode_supported(probe, IORING_OP_SEND_ZC))
            b->zc_min = zc_threshold();
        /* Multishot receive: 6.0, with buffer rings (5.19). */
        b->has_op[CIO__OP_RECV_MULTI] =
            b->has_op[CIO__OP_RECV] && kernel_at_least(6, 0);
        bool poll = io_uring_opcode_supported(probe, IORING_OP_POLL_ADD) &&
                    io_uring_opcode_supported(probe, IORING_OP_POLL_REMOVE);
        io_uring_free_probe(probe);
        disable_ops(b, getenv("CIO_URING_OPS"));
        if (!poll) {
            io_uring_queue_exit(&b->ring);
            cio__free(b);
            return -ENOTSUP;
        }
    }
    *out = b;
    return 0;
}

static void ur_fini(cio__backend *b)
{
    io_uring_queue_exit(&b->ring);
    if (b->pbr)
        munmap(b->pbr, b->pbr_size);
    while (b->all_slots) {
        slot *s = b->all_slots;
        b->all_slots = s->next_all;
        cio__free(s);
    }
    cio__free(b->fds);
    cio__free(b);
}

/* A free submission entry; flushes the queue to the kernel when full. */
static struct io_uring_sqe *get_sqe(cio__backend *b)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&b->ring);
    if (sqe == NULL) {
        io_uring_submit(&b->ring);
        sqe = io_uring_get_sqe(&b->ring);
    }
    return sqe;
}

static int ensure_fd(cio__backend *b, int fd)
{
    if ((size_t)fd < b->nfds)
        return 0;
    size_t n = b->nfds ? b->nfds : 64;
    while (n <= (size_t)fd)
        n *= 2;
    fdrec *v = cio__realloc(b->fds, n * sizeof *v);
    if (v == NULL)
        return -ENOMEM;
    memset(v + b->nfds, 0, (n - b->nfds) * sizeof *v);
    b->fds = v;
    b->nfds = n;
    return 0;
}

static slot *slot_get(cio__backend *b)
{
    slot *s = b->free_slots;
    if (s) {
        b->free_slots = s->next_free;
        return s;
    }
    s = cio__malloc(sizeof *s);
    if (s) {
        s->next_all = b->all_slots;
        b->all_slots = s;
    }
    return s;
}

static void slot_put(cio__backend *b, slot *s)
{
    s->next_free = b->free_slots;
    b->free_slots = s;
}

static int ur_watch(cio__backend *b, cio__fdw *w)
{
    int rc = ensure_fd(b, w->fd);
    if (rc < 0)
        return rc;
    fdrec *r = &b->fds[w->fd];
    if (((w->events & CIO_READABLE) && (r->reader || r->rop)) ||
        ((w->events & CIO_WRITABLE) && (r->writer || r->wop)))
        return -EBUSY;
    slot *s = slot_get(b);
    struct io_uring_sqe *sqe = s ? get_sqe(b) : NULL;
    if (sqe == NULL) {
        if (s)
            slot_put(b, s);
        return -ENOMEM;
    }
    unsigned mask = 0;
    if (w->events & CIO_READABLE)
        mask |= POLLIN | POLLRDHUP;
    if (w->events & CIO_WRITABLE)
        mask |= POLLOUT;
    io_uring_prep_poll_add(sqe, w->fd, mask);
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)s | TAG_WATCH);
    s->w = w;
    w->bslot = s;
    if (w->events & CIO_READABLE)
        r->reader = w;
    if (w->events & CIO_WRITABLE)
        r->writer = w;
    b->waiting += !w->internal;
    return 0;
}

static void forget(cio__backend *b, cio__fdw *w)
{
    fdrec *r = &b->fds[w->fd];
    if (r->reader == w)
        r->reader = NULL;
    if (r->writer == w)
        r->writer = NULL;
    b->waiting -= !w->internal;
    ((slot *)w->bslot)->w = NULL;
    w->bslot = NULL;
}

static void ur_unwatch(cio__backend *b, cio__fdw *w)
{
    slot *s = w->bslot;
    forget(b, w);
    struct io_uring_sqe *sqe = get_sqe(b);
    if (sqe) {
        io_uring_prep_poll_remove(sqe, (uint64_t)(uintptr_t)s | TAG_WATCH);
        io_uring_sqe_set_data64(sqe, 0);
    }
}

static void ur_cancel(cio__backend *b, cio__op *op);

static void ur_closing(cio__backend *b, int fd)
{
    if (fd < 0 || (size_t)fd >= b->nfds)
        return;
    fdrec *r = &b->fds[fd];
    /* Operations in flight hold the file open in the kernel: stop them;
     * their tasks see -EBADF. */
    cio__op *ops[2] = {r->rop, r->wop};
    r->rop = r->wop = NULL; /* the fd's number is free for reuse */
    for (int i = 0; i < 2; i++)
        if (ops[i]) {
            ops[i]->closed = true;
            ur_cancel(b, ops[i]);
        }
    cio__fdw *rd = r->reader, *wr = r->writer;
    if (rd)
        ur_unwatch(b, rd);
    if (wr && wr != rd)
        ur_unwatch(b, wr);
    /* The removals must reach the kernel before close(2) runs. */
    io_uring_submit(&b->ring);
    if (rd)
        rd->ready(rd, CIO__EV_CLOSED);
    if (wr && wr != rd)
        wr->ready(wr, CIO__EV_CLOSED);
}

static void watch_done(cio__backend *b, slot *s, int res)
{
    cio__fdw *w = s->w;
    slot_put(b, s);
    if (w == NULL)
        return; /* unwatched meanwhile */
    forget(b, w);
    if (res == -EBADF) {
        w->ready(w, CIO__EV_CLOSED);
        return;
    }
    unsigned ready = 0;
    if (res < 0 || (res & (POLLIN | POLLRDHUP | POLLERR | POLLHUP)))
        ready |= CIO_READABLE;
    if (res < 0 || (res & (POLLOUT | POLLERR | POLLHUP)))
        ready |= CIO_WRITABLE;
    w->ready(w, ready & w->events);
}

/* ---- provided buffers ------------------------------------------------------ */

/* Map and register the provided buffers: the descriptor ring (one page)
 * followed by PBUF_COUNT buffers. false if the kernel refuses. */
static bool pbufs_init(cio__backend *b)
{
    size_t ring = sizeof(struct io_uring_buf) * PBUF_COUNT;
    size_t size = ring + (size_t)PBUF_COUNT * PBUF_SIZE;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return false;
    struct io_uring_buf_reg reg = {.ring_addr = (uint64_t)(uintptr_t)p,
                                   .ring_entries = PBUF_COUNT,
                                   .bgid = PBUF_GROUP};
    if (io_uring_register_buf_ring(&b->ring, &reg, 0) < 0) {
        munmap(p, size);
        return false;
    }
    b->pbr = p;
    b->pbufs = (char *)p + ring;
    b->pbr_size = size;
    io_uring_buf_ring_init(b->pbr);
    int mask = io_uring_buf_ring_mask(PBUF_COUNT);
    for (unsigned i = 0; i < PBUF_COUNT; i++)
        io_uring_buf_ring_add(b->pbr, b->pbufs + (size_t)i * PBUF_SIZE,
                              PBUF_SIZE, (unsigned short)i, mask, (int)i);
    io_uring_buf_ring_advance(b->pbr, PBUF_COUNT);
    return true;
}

/* Give buffer `bid` back to the kernel. */
static void pbuf_put(cio__backend *b, unsigned bid)
{
    io_uring_buf_ring_add(b->pbr, b->pbufs + (size_t)bid * PBUF_SIZE,
                          PBUF_SIZE, (unsigned short)bid,
                          io_uring_buf_ring_mask(PBUF_COUNT), 0);
    io_uring_buf_ring_advance(b->pbr, 1);
}

/* ---- operations ---------------------------------------------------------- */

static cio__op **op_place(cio__backend *b, const cio__op *op)
{
    fdrec *r = &b->fds[op->fd];
    bool in = op->kind == CIO__OP_RECV || op->kind == CIO__OP_ACCEPT ||
              op->kind == CIO__OP_READ || op->kind == CIO__OP_ACCEPT_MULTI ||
              op->kind == CIO__OP_RECV_MULTI;
    return in ? &r->rop : &r->wop;
}

/* The file system calls. Paths are read by the kernel when it takes the
 * submission; the task waits for the completion anyway. */
static void prep_fs(struct io_uring_sqe *sqe, const cio__op *op)
{
    switch (op->kind) {
    case CIO__OP_OPEN:
        io_uring_prep_openat(sqe, AT_FDCWD, op->path, op->flags, op->mode);
        break;
    case CIO__OP_CLOSE:
        io_uring_prep_close(sqe, op->fd);
        break;
    case CIO__OP_FSYNC:
        io_uring_prep_fsync(sqe, op->fd, 0);
        break;
    case CIO__OP_STATX:
        io_uring_prep_statx(sqe, op->fd, op->path, op->flags, op->mode,
                            op->buf);
        break;
    case CIO__OP_UNLINK:
        io_uring_prep_unlinkat(sqe, AT_FDCWD, op->path, op->flags);
        break;
    case CIO__OP_RENAME:
        io_uring_prep_renameat(sqe, AT_FDCWD, op->path, AT_FDCWD, op->path2,
                               0);
        break;
    default: /* CIO__OP_MKDIR */
        io_uring_prep_mkdirat(sqe, AT_FDCWD, op->path, op->mode);
        break;
    }
}

static int ur_submit(cio__backend *b, cio__op *op)
{
    if (!b->has_op[op->kind] || (!op->file && ensure_fd(b, op->fd) < 0))
        return -ENOTSUP;
    if (op->kind == CIO__OP_RECV_MULTI && b->pbr == NULL &&
        !pbufs_init(b)) {
        b->has_op[CIO__OP_RECV_MULTI] = false;
        return -ENOTSUP;
    }
    fdrec *r = &b->fds[op->fd];
    cio__op **place = op->file ? NULL : op_place(b, op);
    if (place && (*place || (place == &r->rop ? r->reader : r->writer)))
        return -EBUSY;
    struct io_uring_sqe *sqe = get_sqe(b);
    if (sqe == NULL)
        return -ENOTSUP;
    if (place)
        *place = op;
    op->closed = false;
    switch (op->kind) {
    case CIO__OP_RECV:
        io_uring_prep_recv(sqe, op->fd, op->buf, op->len, op->flags);
        break;
    case CIO__OP_SEND:
        /* Zero-copy only for a buffer cio owns (a stream's): a caller's
         * buffer would be held, after a cancel too, until the peer
         * acknowledged the data. */
        op->zc = op->zc && b->zc_min && op->len >= b->zc_min;
        if (op->zc)
            io_uring_prep_send_zc(sqe, op->fd, op->buf, op->len,
                                  op->flags | MSG_NOSIGNAL, 0);
        else
            io_uring_prep_send(sqe, op->fd, op->buf, op->len,
                               op->flags | MSG_NOSIGNAL);
        break;
    case CIO__OP_ACCEPT:
        io_uring_prep_accept(sqe, op->fd, op->addr,
                             op->addr ? &op->addrlen : NULL,
                             SOCK_NONBLOCK | SOCK_CLOEXEC);
        break;
    case CIO__OP_ACCEPT_MULTI:
        io_uring_prep_multishot_accept(sqe, op->fd, NULL, NULL,
                                       SOCK_NONBLOCK | SOCK_CLOEXEC);
        break;
    case CIO__OP_RECV_MULTI:
        io_uring_prep_recv_multishot(sqe, op->fd, NULL, 0, 0);
        sqe->flags |= IOSQE_BUFFER_SELECT;
        sqe->buf_group = PBUF_GROUP;
        break;
    case CIO__OP_READ:
        io_uring_prep_read(sqe, op->fd, op->buf, (unsigned)op->len,
                           (uint64_t)op->off);
        break;
    case CIO__OP_WRITE:
        io_uring_prep_write(sqe, op->fd, op->buf, (unsigned)op->len,
                            (uint64_t)op->off);
        break;
    case CIO__OP_CONNECT:
        io_uring_prep_connect(sqe, op->fd, op->addr, op->addrlen);
        break;
    default:
        prep_fs(sqe, op);
        break;
    }
    io_uring_sqe_set_data64(sqe, (uint64_t)(uintptr_t)op | TAG_OP);
    b->waiting++;
    return 0;
}

static void ur_cancel(cio__backend *b, cio__op *op)
{
    struct io_uring_sqe *sqe = get_sqe(b);
    if (sqe == NULL)
        return;
    io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)op | TAG_OP, 0);
    io_uring_sqe_set_data64(sqe, 0);
}

/* ---- the wait ------------------------------------------------------------ */

/* A zero-copy send completes twice: with its result, then (when that
 * says more follows) with a notice that the kernel let go of the buffer.
 * The operation completes at the notice, with the first result, so that
 * the buffer is the caller's again when it does. Returns true for the
 * first of two. */
static bool zc_first(cio__op *op, const struct io_uring_cqe *cqe)
{
    if (cqe->flags & IORING_CQE_F_NOTIF)
        return false;
    if (!(cqe->flags & IORING_CQE_F_MORE))
        return false; /* failed: no notice follows */
    op->result = cqe->res;
    return true;
}

static int reap(cio__backend *b)
{
    struct io_uring_cqe *cqe;
    unsigned head, n = 0;
    io_uring_for_each_cqe(&b->ring, head, cqe)
    {
        uint64_t ud = cqe->user_data;
        int res = cqe->res;
        n++;
        if (ud & TAG_WATCH) {
            watch_done(b, (slot *)(uintptr_t)(ud & ~(uint64_t)3), res);
        } else if (ud & TAG_OP) {
            cio__op *op = (cio__op *)(uintptr_t)(ud & ~(uint64_t)3);
            if (op->zc) {
                if (zc_first(op, cqe))
                    continue;
                if (cqe->flags & IORING_CQE_F_NOTIF)
                    res = op->result;
            }
            /* A multishot operation stays armed (and in its place)
             * while its completions say more will follow. */
            op->more = (cqe->flags & IORING_CQE_F_MORE) != 0;
            if (!op->more) {
                b->waiting--;
                /* A closed fd's number may have a new owner already. */
                cio__op **place = op->file ? NULL : op_place(b, op);
                if (place && *place == op)
                    *place = NULL;
            }
            if (op->closed && res == -ECANCELED)
                res = -EBADF;
            if (cqe->flags & IORING_CQE_F_BUFFER) {
                unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
                op->buf = b->pbufs + (size_t)bid * PBUF_SIZE;
                cio__op_complete(op, res);
                pbuf_put(b, bid);
            } else {
                cio__op_complete(op, res);
            }
        }
    }
    io_uring_cq_advance(&b->ring, n);
    return (int)n;
}

/* Whether a poll that must not block needs the kernel: to submit what is
 * queued, to run the completions it deferred (DEFER_TASKRUN: the ring's
 * IORING_SQ_TASKRUN flag says some are pending), or to flush completions
 * that overflowed the ring. Otherwise every completion there is is in the
 * ring already. A ring set up without TASKRUN_FLAG (an older kernel)
 * cannot tell, so there the poll enters unless completions are already
 * waiting in the ring. */
static bool must_enter(cio__backend *b)
{
    unsigned flags = IO_URING_READ_ONCE(*b->ring.sq.kflags);
    return io_uring_sq_ready(&b->ring) > 0 ||
           (flags & (IORING_SQ_TASKRUN | IORING_SQ_CQ_OVERFLOW)) ||
           (!b->taskrun_flag && io_uring_cq_ready(&b->ring) == 0);
}

static int ur_poll(cio__backend *b, int64_t timeout)
{
    struct io_uring_cqe *cqe;
    int rc = 0;
    if (timeout == 0) {
        /* A busy loop polls this way every few dozen task steps: when
         * the kernel has nothing to do, skip the system call. */
        if (must_enter(b))
            rc = io_uring_submit_and_get_events(&b->ring);
    } else if (timeout < 0) {
        rc = io_uring_submit_and_wait_timeout(&b->ring, &cqe, 1, NULL, NULL);
    } else {
        struct __kernel_timespec ts = {.tv_sec = timeout / CIO_SEC,
                                       .tv_nsec = timeout % CIO_SEC};
        rc = io_uring_submit_and_wait_timeout(&b->ring, &cqe, 1, &ts, NULL);
    }
    if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EAGAIN &&
        rc != -EBUSY)
        return rc;
    return reap(b);
}

static bool ur_supports(const cio__backend *b, int kind)
{
    return kind >= 0 && kind < CIO__OP_COUNT && b->has_op[kind];
}

static size_t ur_waiting(const cio__backend *b)
{
    return b->waiting - (size_t)b->loop->idle_ops;
}

const cio__backend_ops cio__backend_uring = {
    .name = "io_uring",
    .init = ur_init,
    .fini = ur_fini,
    .poll = ur_poll,
    .watch = ur_watch,
    .unwatch = ur_unwatch,
    .closing = ur_closing,
    .waiting = ur_waiting,
    .submit = ur_submit,
    .cancel = ur_cancel,
    .supports = ur_supports,
};
