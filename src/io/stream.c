/* Streams: buffered reading (readline, readuntil, readexactly) and
 * buffered writing with drain as backpressure, over a connected fd.
 *
 * Writing never suspends. On epoll, write() sends what the socket takes at
 * once and queues the rest, and a one-shot writable watch keeps sending
 * the queue from the loop. On io_uring, write() queues the data and a
 * SEND operation from the stream's own buffer carries it, submitted with
 * the loop's next batch: no system call per write. Two buffers take turns
 * (the one in flight never moves; writes append to the other), so data
 * flows even if nobody drains. drain() and flush() only wait on that
 * progress.
 *
 * Reading on io_uring (6.0 and later) uses a multishot RECV with the
 * loop's provided buffers, armed by the first read that must wait: the
 * kernel posts each chunk as it arrives, with no submission per read, and
 * the chunk is copied at once to the end of the read buffer (or, when
 * that has no room, to an overflow buffer; past OVF_STOP bytes there the
 * multishot is stopped: a stream nobody reads does not keep taking the
 * kernel's buffers). The
 * read buffer never moves outside a read call, so what peek returned
 * stays valid. Bytes that arrive while no read is waiting (its task was
 * cancelled, say) stay buffered for the next read. Out of provided
 * buffers (ENOBUFS), one plain RECV serves that read and the next re-arms.
 *
 * A stream may be closed while another task is suspended in one of its
 * calls: the fd is closed (waking that task with -EBADF) and the memory is
 * freed when the last call in progress returns.
 *
 * A stream with a transport (TLS) keeps its read buffer and reading calls
 * but gets its bytes from the transport, which also carries its writes:
 * the fd paths below are skipped for it. */
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cio/dns.h"
#include "internal.h"

#define DEFAULT_LIMIT ((size_t)64 * 1024)
#define DEFAULT_HIGH ((size_t)64 * 1024)
#define DEFAULT_LOW ((size_t)16 * 1024)
#define INITIAL_RBUF ((size_t)16 * 1024)
#define DIRECT_READ ((size_t)16 * 1024)
/* A read that needs this much more than is buffered (readexactly, peek)
 * receives straight into the read buffer instead of through the
 * multishot's small provided buffers: measured with bench/zc, 1 MiB
 * messages move at about half the speed in 4 KiB chunks. */
#define BULK_READ ((size_t)32 * 1024)
/* Bytes kept in the overflow buffer (chunks that found no room at the end
 * of the read buffer) above which the multishot receive is stopped until
 * a read takes them: the bound on what a stream nobody reads holds. */
#define OVF_STOP ((size_t)64 * 1024)

struct cio_stream {
    int fd;
    cio__tracked track; /* debug mode: reported if never closed */
    bool sock; /* a socket (recv/send) or not (read/write: pipes, ttys) */
    /* Readiness backends (epoll): after a short read, wait before the
     * next receive instead of trying it first. */
    bool wait_first;
    bool drained;
    size_t limit, high, low;
    int users;   /* calls in progress */
    bool closed; /* freed when users drops to 0 */
    /* Reading: data is rbuf[rpos, rpos + rlen). */
    char *rbuf;
    size_t rcap, rpos, rlen;
    bool eof;
    int rerr;
    /* Writing: queued data is wbuf[wpos, wpos + wlen). */
    char *wbuf;
    size_t wcap, wpos, wlen;
    int werr;
    bool wshut;
    bool watching;
    cio__fdw wwatch;
    cio__waitq drainers;
    /* io_uring: sbuf[spos, spos + slen) is in flight in `sop`. */
    bool ring;    /* send through the ring (io_uring backend, socket) */
    bool sending; /* sop is in flight */
    bool awaited; /* closed with sop in flight: counted in closing_ops */
    cio__op sop;
    char *sbuf;
    size_t scap, spos, slen;
    /* A transport instead of the fd, or NULL. */
    const cio__stream_transport *tr;
    void *timpl;
    /* io_uring: reads through the multishot `rop`; data that found no
     * room at the end of rbuf waits in ovf[0, olen). */
    bool multi;   /* reads use the multishot receive */
    bool rarmed;  /* rop is in flight */
    bool rstop;   /* its cancellation was sent */
    bool nobufs;  /* it ended for want of provided buffers */
    bool idle;    /* armed with no task waiting: in loop->idle_ops */
    cio_task *rwaiter;
    cio__op rop;
    char *ovf;
    size_t olen, ocap;
};

/* Bytes queued for sending, in flight included. */
static size_t pending(const cio_stream *s)
{
    if (CIO__UNLIKELY(s->tr != NULL))
        return s->tr->pending(s->timpl);
    return s->wlen + s->slen;
}

static void stream_free(cio_stream *s)
{
    cio__untrack(&s->track);
    if (s->tr)
        s->tr->free(s->timpl);
    cio__free(s->rbuf);
    cio__free(s->ovf);
    cio__free(s->sbuf);
    cio__free(s->wbuf);
    cio__free(s);
}

/* Enter / leave a call that may suspend. */
static bool enter(cio_stream *s)
{
    if (s->closed)
        return false;
    s->users++;
    return true;
}

/* Free a closed stream once no call is in progress and no SEND or
 * multishot RECV is in flight. Returns true if it was freed. */
static bool maybe_free(cio_stream *s)
{
    if (!s->closed || s->users > 0 || s->sending || s->rarmed)
        return false;
    if (s->awaited)
        cio__loop->closing_ops--;
    stream_free(s);
    return true;
}

static ssize_t leave(cio_stream *s, ssize_t rc)
{
    s->users--;
    if (maybe_free(s))
        return rc < 0 ? rc : -EBADF;
    return rc;
}

int cio_stream_open(cio_stream **out, int fd, const cio_stream_opts *o)
{
    if (out == NULL || fd < 0) {
        if (fd >= 0)
            close(fd);
        return -EINVAL;
    }
    cio_stream *s = cio__calloc(1, sizeof *s);
    if (s == NULL) {
        close(fd);
        return -ENOMEM;
    }
    s->fd = fd;
    cio__fd_opened(fd);
    struct stat st;
    s->sock = fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
    /* A blocking fd would block the whole loop in recv() or read(). */
    int fl = fcntl(fd, F_GETFL);
    if (fl != -1 && !(fl & O_NONBLOCK))
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    s->ring = s->sock && cio__loop && cio__loop->bops->supports &&
              cio__loop->bops->supports(cio__loop->backend, CIO__OP_SEND);
    s->multi = s->ring && cio__loop->bops->supports(cio__loop->backend,
                                                    CIO__OP_RECV_MULTI);
    s->wait_first = s->sock && cio__loop &&
                    !(cio__loop->bops->supports &&
                      cio__loop->bops->supports(cio__loop->backend,
                                                CIO__OP_RECV));
    s->limit = o && o->limit ? o->limit : DEFAULT_LIMIT;
    s->high = o && o->high_water ? o->high_water : DEFAULT_HIGH;
    s->low = o && o->low_water ? o->low_water : DEFAULT_LOW;
    if (s->low > s->high)
        s->low = s->high;
    cio__track(&s->track, "stream", fd);
    *out = s;
    return 0;
}

int cio__stream_open_transport(cio_stream **out, int fd,
                               const cio__stream_transport *tr, void *impl,
                               const cio_stream_opts *o)
{
    cio_stream *s = cio__calloc(1, sizeof *s);
    if (s == NULL)
        return -ENOMEM;
    s->fd = fd;
    s->sock = true;
    s->tr = tr;
    s->timpl = impl;
    s->limit = o && o->limit ? o->limit : DEFAULT_LIMIT;
    s->high = o && o->high_water ? o->high_water : DEFAULT_HIGH;
    s->low = o && o->low_water ? o->low_water : DEFAULT_LOW;
    if (s->low > s->high)
        s->low = s->high;
    cio__track(&s->track, "TLS stream", fd);
    *out = s;
    return 0;
}

void *cio__stream_transport_impl(const cio_stream *s,
                                 const cio__stream_transport *tr)
{
    return s && s->tr == tr && tr != NULL ? s->timpl : NULL;
}

int cio_open_connection(cio_stream **out, const char *host, int port,
                        const cio_stream_opts *opts)
{
    if (out == NULL)
        return -EINVAL;
    cio_addr a;
    int rc = cio_addr_ip(&a, host, port);
    if (rc == -EINVAL && host != NULL && host[0] != '\0' && port >= 0 &&
        port <= 65535) {
        /* A name: resolve it and race the addresses (happy eyeballs). */
        cio_connect_opts co = {.stream = opts ? *opts : (cio_stream_opts){0}};
        return cio_open_connection_host(out, host, port, &co);
    }
    if (rc < 0)
        return rc;
    int fd;
    rc = cio_connect_addr(&fd, &a);
    if (rc < 0)
        return rc;
    return cio_stream_open(out, fd, opts);
}

int cio_stream_fd(const cio_stream *s)
{
    return s ? s->fd : -EINVAL;
}

size_t cio_stream_buffered(const cio_stream *s)
{
    return s ? s->rlen : 0;
}

size_t cio_stream_write_pending(const cio_stream *s)
{
    return s ? pending(s) : 0;
}

/* ---- reading ------------------------------------------------------------- */

static void consume(cio_stream *s, size_t n)
{
    s->rpos += n;
    s->rlen -= n;
    if (s->rlen == 0)
        s->rpos = 0;
}

/* Copy `n` buffered bytes out and consume them. The buffer is allocated
 * on the first fill, so with nothing ever buffered it is NULL. */
static void take(cio_stream *s, void *buf, size_t n)
{
    if (n == 0)
        return;
    memcpy(buf, s->rbuf + s->rpos, n);
    consume(s, n);
}

/* One receive from the fd or the transport. Suspends. Inlined: the
 * plain path must cost no more than before transports existed. */
static inline __attribute__((always_inline)) ssize_t
recv_some(cio_stream *s, void *buf, size_t n)
{
    if (CIO__UNLIKELY(s->tr != NULL))
        return s->tr->recv(s->timpl, buf, n);
    return s->sock ? cio_recv(s->fd, buf, n, 0) : cio__read(s->fd, buf, n);
}

/* Make room for at least `need` buffered bytes and one more recv. */
static int reserve_read(cio_stream *s, size_t need)
{
    if (need < INITIAL_RBUF)
        need = INITIAL_RBUF;
    if (s->rpos > 0 && s->rpos + s->rlen == s->rcap) {
        memmove(s->rbuf, s->rbuf + s->rpos, s->rlen);
        s->rpos = 0;
    }
    if (s->rcap >= need && s->rpos + s->rlen < s->rcap)
        return 0;
    size_t cap = s->rcap ? s->rcap : INITIAL_RBUF;
    while (cap < need || cap <= s->rlen)
        cap *= 2;
    char *b = cio__malloc(cap);
    if (b == NULL)
        return -ENOMEM;
    if (s->rlen)
        memcpy(b, s->rbuf + s->rpos, s->rlen);
    cio__free(s->rbuf);
    s->rbuf = b;
    s->rcap = cap;
    s->rpos = 0;
    return 0;
}

/* ---- multishot receive (io_uring) --------------------------------------- */

/* Keep loop->idle_ops right: a multishot armed while no task waits on it
 * is not work that could wake anyone (the deadlock check must not count
 * it). Called wherever rarmed or rwaiter change. */
static void sync_idle(cio_stream *s)
{
    bool idle = s->rarmed && s->rwaiter == NULL;
    if (idle != s->idle) {
        s->idle = idle;
        cio__loop->idle_ops += idle ? 1 : -1;
    }
}

static void multi_stop(cio_stream *s)
{
    if (s->rarmed && !s->rstop) {
        s->rstop = true;
        cio__loop->bops->cancel(cio__loop->backend, &s->rop);
    }
}

/* Keep `n` bytes that found no room in rbuf. */
static int ovf_add(cio_stream *s, const char *p, size_t n)
{
    if (s->olen + n > s->ocap) {
        size_t cap = s->ocap ? s->ocap : 16 * 1024;
        while (cap < s->olen + n)
            cap *= 2;
        char *b = cio__realloc(s->ovf, cap);
        if (b == NULL)
            return -ENOMEM;
        s->ovf = b;
        s->ocap = cap;
    }
    memcpy(s->ovf + s->olen, p, n);
    s->olen += n;
    return 0;
}

/* A completion of the multishot receive: a chunk (in a provided buffer
 * that goes back to the kernel when this returns), end of stream, or how
 * the multishot ended. */
static void on_received(cio__op *op)
{
    cio_stream *s = CIO__CONTAINER(op, cio_stream, rop);
    int res = op->result;
    if (!op->more)
        s->rarmed = false;
    if (s->closed) {
        if (s->rwaiter) /* the closer, waiting for this */
            cio__wake(s->rwaiter, 0);
        sync_idle(s);
        maybe_free(s);
        return;
    }
    if (res > 0) {
        size_t end = s->rpos + s->rlen;
        if (s->olen == 0 && s->rbuf && s->rcap - end >= (size_t)res) {
            memcpy(s->rbuf + end, op->buf, (size_t)res);
            s->rlen += (size_t)res;
        } else {
            int rc = ovf_add(s, op->buf, (size_t)res);
            if (rc < 0 && !s->rerr)
                s->rerr = rc; /* bytes lost: the stream cannot go on */
            if (rc < 0 || s->olen >= OVF_STOP)
                multi_stop(s); /* enough kept: wait for a reader */
        }
    } else if (res == 0) {
        s->eof = true;
    } else if (res == -ENOBUFS) {
        s->nobufs = true;
    } else if (res != -ECANCELED && !s->rerr) {
        s->rerr = res;
    }
    if (s->rwaiter) {
        cio_task *t = s->rwaiter;
        s->rwaiter = NULL;
        cio__wake(t, 0);
    }
    sync_idle(s);
}

static void multi_unlink(cio_task *t)
{
    cio_stream *s = (cio_stream *)t->wait_obj;
    s->rwaiter = NULL;
    sync_idle(s);
}

/* Park the running task `t` on the stream's multishot. */
static int multi_park(cio_stream *s, cio_task *t, unsigned flags)
{
    s->rwaiter = t;
    sync_idle(s);
    t->unlink = multi_unlink;
    t->wait_q = NULL;
    int rc = cio__park(t, CIO__W_FD, s, CIO_NEVER, flags);
    if (s->rwaiter == t) /* not another task's (a closer's) by now */
        s->rwaiter = NULL;
    sync_idle(s);
    return rc;
}

/* At close, with the fd closed (which cancels the multishot): wait for
 * its last completion, which comes with the next turn of the loop, so
 * that the stream is gone when cio_stream_close returns. Only outside a
 * task, or if the loop's last-resort cancellation breaks the wait, is
 * the stream left to be freed at that completion. */
static void multi_wait_end(cio_stream *s)
{
    cio_task *t = cio__self();
    if (!s->rarmed || t == NULL || s->rwaiter)
        return;
    s->users++;
    while (s->rarmed)
        if (multi_park(s, t, CIO__PARK_UNINTERRUPTIBLE) < 0)
            break;
    s->users--;
}

/* Move the overflow to the end of rbuf: these bytes come before any
 * that arrive later. Returns their count or -ENOMEM. */
static ssize_t ovf_take(cio_stream *s)
{
    int rc = reserve_read(s, s->rlen + s->olen);
    if (rc < 0)
        return rc;
    if (s->rcap - s->rpos - s->rlen < s->olen) {
        memmove(s->rbuf, s->rbuf + s->rpos, s->rlen);
        s->rpos = 0;
    }
    size_t n = s->olen;
    memcpy(s->rbuf + s->rpos + s->rlen, s->ovf, n);
    s->rlen += n;
    s->olen = 0;
    return (ssize_t)n;
}

static int multi_arm(cio_stream *s)
{
    s->rop = (cio__op){.kind = CIO__OP_RECV_MULTI, .fd = s->fd,
                       .done = on_received};
    int rc = cio__loop->bops->submit(cio__loop->backend, &s->rop);
    if (rc < 0)
        return rc;
    cio__count_op(&cio__loop->stats, CIO__OP_RECV_MULTI);
    s->rarmed = true;
    s->rstop = false;
    sync_idle(s);
    return 0;
}

/* fill() through the multishot: wait until more bytes are buffered, the
 * stream ends or fails. Returns as fill. */
static ssize_t fill_multi(cio_stream *s)
{
    CIO__SELF_OR_RETURN(t);
    if (s->rwaiter)
        return -EBUSY; /* another task is reading */
    int rc = cio__checkpoint(t);
    if (rc < 0)
        return rc;
    size_t before = s->rlen;
    while (s->rlen == before && s->olen == 0 && !s->eof && !s->rerr) {
        if (!s->rarmed && s->nobufs) {
            /* Out of provided buffers: one plain receive. */
            s->nobufs = false;
            return -ENOTSUP;
        }
        if (!s->rarmed) {
            rc = multi_arm(s);
            if (rc < 0) {
                s->multi = false; /* plain receives from now on */
                return -ENOTSUP;
            }
        }
        rc = multi_park(s, t, 0);
        if (s->closed)
            return -EBADF;
        if (rc < 0)
            return rc; /* what arrives meanwhile stays buffered */
    }
    if (s->rlen > before)
        return (ssize_t)(s->rlen - before);
    if (s->olen > 0)
        return ovf_take(s);
    return s->rerr ? s->rerr : 0;
}

/* Before a bulk receive: stop the multishot and wait for its end (its
 * last chunks land in rbuf or ovf). Returns the bytes that came
 * meanwhile, 0 if none, or < 0 (-ECANCELED). */
static ssize_t multi_quiesce(cio_stream *s)
{
    CIO__SELF_OR_RETURN(t);
    size_t before = s->rlen;
    multi_stop(s);
    while (s->rarmed) {
        int rc = multi_park(s, t, 0);
        if (s->closed)
            return -EBADF;
        if (rc < 0)
            return rc;
    }
    if (s->olen > 0)
        return ovf_take(s);
    return (ssize_t)(s->rlen - before);
}

/* One recv into the buffer, with room for `need` bytes; `exact` says
 * that many are needed (not just allowed). Returns > 0, 0 at end of
 * stream, or < 0. */
static ssize_t fill(cio_stream *s, size_t need, bool exact)
{
    if (CIO__UNLIKELY(s->olen > 0))
        return ovf_take(s); /* kept while rbuf had no room: first */
    if (s->eof)
        return 0;
    if (s->rerr)
        return s->rerr;
    int rc = reserve_read(s, need);
    if (rc < 0)
        return rc;
    if (s->multi) {
        ssize_t n;
        if (!exact || need < s->rlen + BULK_READ)
            n = fill_multi(s);
        else if (s->rwaiter)
            n = -EBUSY; /* another task is reading */
        else if ((n = multi_quiesce(s)) == 0 && !s->eof && !s->rerr)
            n = -ENOTSUP; /* a plain receive, below */
        else if (n == 0)
            n = s->rerr;
        if (n != -ENOTSUP)
            return n;
    }
    size_t end = s->rpos + s->rlen;
    size_t room = s->rcap - end;
    if (s->drained) {
        /* The last receive came back short: the socket is most likely
         * empty, so wait for data rather than try a receive that would
         * fail with EAGAIN (one system call saved per message). */
        s->drained = false;
        rc = cio__fd_wait_drained(s->fd, CIO_READABLE);
        if (s->closed)
            return -EBADF;
        if (rc < 0)
            return rc == -ECANCELED ? rc : (s->rerr = rc);
    }
    ssize_t n = recv_some(s, s->rbuf + end, room);
    if (s->closed)
        return -EBADF;
    if (n > 0 && (size_t)n < room && s->wait_first) {
        s->drained = true;
        cio__fd_drained(s->fd, CIO_READABLE);
    }
    if (n > 0)
        s->rlen += (size_t)n;
    else if (n == 0)
        s->eof = true;
    else if (n != -ECANCELED)
        s->rerr = (int)n;
    return n;
}

/* Read until `n` bytes are buffered or the stream ends. 0 or < 0. */
static ssize_t fill_to(cio_stream *s, size_t n)
{
    while (s->rlen < n) {
        ssize_t r = fill(s, n, true);
        if (r <= 0)
            return r;
    }
    return 0;
}

static ssize_t do_read(cio_stream *s, void *buf, size_t n)
{
    if (s->rlen == 0) {
        if (n >= DIRECT_READ && !s->eof && !s->rerr && !s->rarmed &&
            s->olen == 0) {
            ssize_t r = recv_some(s, buf, n);
            if (s->closed)
                return -EBADF;
            if (r == 0)
                s->eof = true;
            else if (r < 0 && r != -ECANCELED)
                s->rerr = (int)r;
            return r;
        }
        ssize_t r = fill(s, 0, false);
        if (r <= 0)
            return r;
    } else {
        /* A checkpoint even when data is already there. */
        int rc = cio_checkpoint();
        if (rc < 0)
            return rc;
    }
    size_t k = n < s->rlen ? n : s->rlen;
    memcpy(buf, s->rbuf + s->rpos, k);
    consume(s, k);
    return (ssize_t)k;
}

ssize_t cio_stream_read(cio_stream *s, void *buf, size_t n)
{
    if (s == NULL || (buf == NULL && n > 0))
        return -EINVAL;
    if (n == 0)
        return 0;
    if (!enter(s))
        return -EBADF;
    return leave(s, do_read(s, buf, n));
}

static ssize_t do_readexactly(cio_stream *s, void *buf, size_t n,
                              size_t *partial)
{
    int rc = cio_checkpoint();
    if (rc < 0)
        return rc;
    ssize_t r = fill_to(s, n);
    if (r < 0)
        return r;
    size_t k = n < s->rlen ? n : s->rlen;
    take(s, buf, k);
    if (k == n)
        return (ssize_t)n;
    if (partial)
        *partial = k;
    return CIO_EINCOMPLETE;
}

ssize_t cio_stream_readexactly(cio_stream *s, void *buf, size_t n,
                               size_t *partial)
{
    if (s == NULL || (buf == NULL && n > 0) || n > SSIZE_MAX)
        return -EINVAL;
    if (partial)
        *partial = 0;
    if (!enter(s))
        return -EBADF;
    return leave(s, do_readexactly(s, buf, n, partial));
}

static ssize_t do_readuntil(cio_stream *s, void *buf, size_t size,
                            const void *delim, size_t dlen, size_t *partial)
{
    size_t max = size < s->limit ? size : s->limit;
    if (dlen > max)
        return -EMSGSIZE;
    int rc = cio_checkpoint();
    if (rc < 0)
        return rc;
    size_t scanned = 0;
    for (;;) {
        size_t avail = s->rlen < max ? s->rlen : max;
        size_t from = scanned >= dlen ? scanned - dlen + 1 : 0;
        if (avail >= dlen && from <= avail - dlen) {
            const char *hit = memmem(s->rbuf + s->rpos + from, avail - from,
                                     delim, dlen);
            if (hit) {
                size_t len = (size_t)(hit - (s->rbuf + s->rpos)) + dlen;
                memcpy(buf, s->rbuf + s->rpos, len);
                consume(s, len);
                return (ssize_t)len;
            }
        }
        if (s->rlen >= max)
            return -EMSGSIZE; /* nothing consumed */
        scanned = s->rlen;
        ssize_t r = fill(s, max, false);
        if (r < 0)
            return r;
        if (r == 0) {
            size_t k = s->rlen;
            take(s, buf, k);
            if (partial)
                *partial = k;
            return CIO_EINCOMPLETE;
        }
    }
}

ssize_t cio_stream_readuntil(cio_stream *s, void *buf, size_t size,
                             const void *delim, size_t dlen,
                             size_t *partial)
{
    if (s == NULL || buf == NULL || delim == NULL || dlen == 0 ||
        size > SSIZE_MAX)
        return -EINVAL;
    if (partial)
        *partial = 0;
    if (!enter(s))
        return -EBADF;
    return leave(s, do_readuntil(s, buf, size, delim, dlen, partial));
}

ssize_t cio_stream_readline(cio_stream *s, void *buf, size_t size)
{
    size_t partial = 0;
    ssize_t rc = cio_stream_readuntil(s, buf, size, "\n", 1, &partial);
    return rc == CIO_EINCOMPLETE ? (ssize_t)partial : rc;
}

static ssize_t do_peek(cio_stream *s, const void **data, size_t want)
{
    int rc = cio_checkpoint();
    if (rc < 0)
        return rc;
    ssize_t r = fill_to(s, want);
    if (r < 0)
        return r;
    *data = s->rbuf ? s->rbuf + s->rpos : "";
    return (ssize_t)s->rlen;
}

ssize_t cio_stream_peek(cio_stream *s, const void **data, size_t want)
{
    if (s == NULL || data == NULL)
        return -EINVAL;
    if (want == 0)
        want = 1;
    if (want > s->limit)
        return -ENOBUFS;
    if (!enter(s))
        return -EBADF;
    return leave(s, do_peek(s, data, want));
}

size_t cio__stream_rdata(const cio_stream *s, const void **data)
{
    *data = s->rlen ? s->rbuf + s->rpos : NULL;
    return s->rlen;
}

int cio_stream_consume(cio_stream *s, size_t n)
{
    if (s == NULL || n > s->rlen)
        return -EINVAL;
    consume(s, n);
    return 0;
}

/* ---- writing ------------------------------------------------------------- */

static void wake_drainers(cio_stream *s, int result)
{
    cio__waiter *w;
    while ((w = cio__waitq_pop(&s->drainers)))
        cio__wake(w->task, result);
}

/* One non-blocking send or write: a count, -EAGAIN, or -errno. */
static ssize_t send_now(cio_stream *s, const void *p, size_t n)
{
    if (!s->sock)
        return cio__write_now(s->fd, p, n);
    for (;;) {
        ssize_t k = send(s->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (k >= 0)
            return k;
        if (errno != EINTR)
            return errno == EWOULDBLOCK ? -EAGAIN : -errno;
    }
}

/* Send queued data until the socket is full. */
static void send_queued(cio_stream *s)
{
    while (s->wlen > 0) {
        ssize_t n = send_now(s, s->wbuf + s->wpos, s->wlen);
        if (n < 0) {
            if (n != -EAGAIN)
                s->werr = (int)n;
            break;
        }
        s->wpos += (size_t)n;
        s->wlen -= (size_t)n;
    }
    if (s->wlen == 0)
        s->wpos = 0;
}

static void watch_writable(cio_stream *s);

static void on_writable(cio__fdw *w, unsigned events)
{
    cio_stream *s = w->data;
    s->watching = false;
    if (events & CIO__EV_CLOSED)
        s->werr = -EBADF;
    else
        send_queued(s);
    if (s->werr) {
        wake_drainers(s, s->werr);
        return;
    }
    if (s->wlen > 0)
        watch_writable(s);
    if (s->wlen <= s->low)
        wake_drainers(s, 0);
}

static void watch_writable(cio_stream *s)
{
    cio_loop *l = cio__loop;
    if (s->watching || l == NULL)
        return;
    s->wwatch = (cio__fdw){.ready = on_writable, .fd = s->fd,
                           .events = CIO_WRITABLE | CIO__EV_EDGE, .data = s};
    int rc = l->bops->watch(l->backend, &s->wwatch);
    if (rc < 0)
        s->werr = rc;
    else
        s->watching = true;
}

static int queue_bytes(cio_stream *s, const char *p, size_t n)
{
    if (s->wpos + s->wlen + n > s->wcap) {
        if (s->wpos > 0) {
            memmove(s->wbuf, s->wbuf + s->wpos, s->wlen);
            s->wpos = 0;
        }
        if (s->wlen + n > s->wcap) {
            size_t cap = s->wcap ? s->wcap : 16 * 1024;
            while (cap < s->wlen + n)
                cap *= 2;
            char *b = cio__realloc(s->wbuf, cap);
            if (b == NULL)
                return -ENOMEM;
            s->wbuf = b;
            s->wcap = cap;
        }
    }
    memcpy(s->wbuf + s->wpos + s->wlen, p, n);
    s->wlen += n;
    return 0;
}

static void wake_drainers(cio_stream *s, int result);

static void submit_send(cio_stream *s);

/* The queued buffer becomes the one to send; the sent one, empty, takes
 * new writes. */
static void swap_buffers(cio_stream *s)
{
    char *b = s->sbuf;
    size_t cap = s->scap;
    s->sbuf = s->wbuf;
    s->scap = s->wcap;
    s->spos = s->wpos;
    s->slen = s->wlen;
    s->wbuf = b;
    s->wcap = cap;
    s->wpos = s->wlen = 0;
}

/* A SEND from the ring completed. */
static void on_sent(cio__op *op)
{
    cio_stream *s = CIO__CONTAINER(op, cio_stream, sop);
    s->sending = false;
    if (op->result < 0) {
        if (!s->werr)
            s->werr = op->result;
        s->slen = 0;
        wake_drainers(s, s->werr);
    } else {
        s->spos += (size_t)op->result;
        s->slen -= (size_t)op->result;
        if (s->slen == 0 && s->wlen > 0 && !s->closed) {
            swap_buffers(s); /* the other buffer's turn */
        }
        if (s->slen > 0 && !s->closed)
            submit_send(s);
        if (pending(s) <= s->low || s->closed)
            wake_drainers(s, s->werr);
    }
    maybe_free(s);
}

static void submit_send(cio_stream *s)
{
    /* The buffer is the stream's own, so it may go zero-copy where the
     * backend is set to (the SEND completes when the kernel lets go of
     * the buffer: for TCP, once the peer acknowledged the data). */
    s->sop = (cio__op){.kind = CIO__OP_SEND, .fd = s->fd,
                       .buf = s->sbuf + s->spos, .len = s->slen,
                       .done = on_sent, .zc = true};
    int rc = cio__loop->bops->submit(cio__loop->backend, &s->sop);
    if (rc < 0) {
        s->werr = rc == -ENOTSUP ? -EIO : rc;
        s->slen = 0;
        wake_drainers(s, s->werr);
        return;
    }
    s->sending = true;
    cio__count_op(&cio__loop->stats, CIO__OP_SEND);
}

static int queue_bytes(cio_stream *s, const char *p, size_t n);

static int ring_write(cio_stream *s, const char *p, size_t n)
{
    int rc = queue_bytes(s, p, n);
    if (rc < 0 || s->sending)
        return rc;
    swap_buffers(s); /* nothing in flight: this buffer goes now */
    submit_send(s);
    return s->werr;
}

int cio_stream_write(cio_stream *s, const void *buf, size_t n)
{
    if (s == NULL || (buf == NULL && n > 0))
        return -EINVAL;
    if (s->closed)
        return -EBADF;
    if (s->werr)
        return s->werr;
    if (s->wshut)
        return -EPIPE;
    if (n == 0)
        return 0;
    if (CIO__UNLIKELY(s->tr != NULL))
        return s->tr->send(s->timpl, buf, n);
    if (s->ring)
        return ring_write(s, buf, n);
    const char *p = buf;
    if (s->wlen == 0) {
        while (n > 0) {
            ssize_t k = send_now(s, p, n);
            if (k < 0) {
                if (k == -EAGAIN)
                    break;
                return s->werr = (int)k;
            }
            p += k;
            n -= (size_t)k;
        }
    }
    if (n == 0)
        return 0;
    int rc = queue_bytes(s, p, n);
    if (rc < 0)
        return rc;
    watch_writable(s);
    return s->werr;
}

/* Wait until at most `target` bytes are queued. */
static int wait_queue(cio_stream *s, size_t target)
{
    if (CIO__UNLIKELY(s->tr != NULL))
        return s->tr->wait_sent(s->timpl, target);
    CIO__SELF_OR_RETURN(t);
    int rc = cio__checkpoint(t);
    while (rc == 0 && pending(s) > target && !s->werr) {
        cio__waiter w = {0};
        rc = cio__park_q(t, &s->drainers, &w, CIO__W_FD, s, CIO_NEVER, 0);
        if (rc < 0)
            return rc; /* s may be gone if it was closed */
    }
    return rc < 0 ? rc : s->werr;
}

int cio_stream_drain(cio_stream *s)
{
    if (s == NULL)
        return -EINVAL;
    if (!enter(s))
        return -EBADF;
    int rc = pending(s) > s->high ? wait_queue(s, s->low) : cio_checkpoint();
    if (rc == 0)
        rc = s->werr;
    return (int)leave(s, rc);
}

int cio__stream_wait_sent(cio_stream *s, size_t target)
{
    if (s == NULL)
        return -EINVAL;
    if (!enter(s))
        return -EBADF;
    return (int)leave(s, wait_queue(s, target));
}

int cio_stream_flush(cio_stream *s)
{
    if (s == NULL)
        return -EINVAL;
    if (!enter(s))
        return -EBADF;
    return (int)leave(s, wait_queue(s, 0));
}

int cio_stream_write_eof(cio_stream *s)
{
    if (s == NULL)
        return -EINVAL;
    if (s->wshut)
        return 0;
    if (s->tr) {
        if (!enter(s))
            return -EBADF;
        int rc = s->tr->write_eof(s->timpl);
        if (rc == 0)
            s->wshut = true;
        return (int)leave(s, rc);
    }
    int rc = cio_stream_flush(s);
    if (rc < 0)
        return rc;
    s->wshut = true;
    if (!s->sock) {
        /* A pipe ends by closing: keep the fd for reading if it is one. */
        return 0;
    }
    if (shutdown(s->fd, SHUT_WR) == -1)
        return -errno;
    return 0;
}

/* Closing a stream with a transport: refuse new calls at once, and keep
 * the memory while the transport closes (it may suspend) and while other
 * calls in progress return. */
static int close_transport(cio_stream *s)
{
    bool busy = s->users > 0;
    s->closed = true;
    s->users++;
    int rc = s->tr->close(s->timpl, busy);
    s->fd = -1;
    s->users--;
    maybe_free(s);
    return rc;
}

int cio_stream_close(cio_stream *s)
{
    if (s == NULL)
        return 0;
    if (s->closed)
        return -EBADF;
    cio__untrack(&s->track);
    if (s->tr)
        return close_transport(s);
    int rc = 0;
    if (pending(s) > 0 && !s->werr && cio__self())
        rc = cio_stream_flush(s);
    if (pending(s) > 0 && rc == 0)
        rc = s->werr ? s->werr : -EPIPE;
    if (s->watching) {
        cio__loop->bops->unwatch(cio__loop->backend, &s->wwatch);
        s->watching = false;
    }
    s->closed = true;
    wake_drainers(s, -EBADF);
    if (s->rwaiter) {
        cio_task *t = s->rwaiter;
        s->rwaiter = NULL;
        cio__wake(t, -EBADF);
    }
    if (s->sending && s->sop.zc) {
        /* A zero-copy SEND ends only when the kernel frees its data,
         * which a peer that does not read would delay for minutes after
         * a plain close: the data is not going to be sent (rc says so),
         * so reset the connection instead. */
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(s->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    }
    /* Wakes a task suspended in a read with -EBADF, and stops a SEND or
     * multishot RECV in flight; the stream is freed once they have
     * completed. */
    cio_close(s->fd);
    s->fd = -1;
    multi_wait_end(s);
    if (s->sending || s->rarmed) {
        s->awaited = true;
        cio__loop->closing_ops++; /* the loop waits for it before ending */
    }
    maybe_free(s);
    return rc;
}
