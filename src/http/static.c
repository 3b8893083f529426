/* Static files: a handler that serves a directory tree and never anything
 * outside it. The path is checked segment by segment (no "..", no NUL,
 * which percent-decoding may have produced), then opened with openat2
 * RESOLVE_BENEATH relative to the root's descriptor, so a symbolic link
 * cannot lead out either. */
#include <fcntl.h>
#include <stdlib.h>
#include <inttypes.h>
#include <linux/openat2.h>
#include <strings.h>
#include <signal.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "server_int.h"

#define CHUNK ((size_t)64 * 1024)

struct cio_http_static {
    int dirfd;
};

int cio_http_static_new(cio_http_static **out, const char *root)
{
    if (out == NULL || root == NULL)
        return -EINVAL;
    cio_http_static *st = cio__calloc(1, sizeof *st);
    if (st == NULL)
        return -ENOMEM;
    st->dirfd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (st->dirfd < 0) {
        int rc = -errno;
        cio__free(st);
        return rc;
    }
    *out = st;
    return 0;
}

void cio_http_static_free(cio_http_static *st)
{
    if (st == NULL)
        return;
    close(st->dirfd);
    cio__free(st);
}

/* 0, or the status that refuses `path`. */
static int check_path(const char *path)
{
    const char *s = path;
    while (*s) {
        while (*s == '/')
            s++;
        size_t n = strcspn(s, "/");
        if ((n == 2 && s[0] == '.' && s[1] == '.') || (n == 1 && s[0] == '.'))
            return 403;
        if (memchr(s, '\\', n) != NULL)
            return 403;
        s += n;
    }
    return 0;
}

/* Without openat2 (before Linux 5.6, or under valgrind): walk the path
 * one component at a time with O_NOFOLLOW, so no symbolic link is
 * followed at all, inside the root or not. */
static int open_walk(int dirfd, const char *rel)
{
    int cur = dirfd;
    char seg[256];
    int fd = -ENOENT;
    for (const char *p = rel;;) {
        size_t n = strcspn(p, "/");
        if (n >= sizeof seg) {
            fd = -ENAMETOOLONG;
            break;
        }
        memcpy(seg, p, n);
        seg[n] = '\0';
        p += n;
        while (*p == '/')
            p++;
        bool last = *p == '\0';
        /* "a.txt/" names a directory, as openat2 takes it. */
        bool dir = !last || (p > rel && p[-1] == '/');
        fd =
            openat(cur, n ? seg : ".",
                   O_RDONLY | O_CLOEXEC | O_NOFOLLOW | (dir ? O_DIRECTORY : 0));
        if (fd < 0)
            fd = errno == ELOOP ? -EXDEV : -errno;
        if (cur != dirfd)
            close(cur);
        if (fd < 0 || last)
            break;
        cur = fd;
    }
    return fd;
}

static int open_beneath(int dirfd, const char *rel)
{
    struct open_how how = {
        .flags = O_RDONLY | O_CLOEXEC,
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
    };
    long fd = syscall(SYS_openat2, dirfd, *rel ? rel : ".", &how, sizeof how);
    if (fd < 0 && errno == ENOSYS)
        return open_walk(dirfd, rel);
    return fd < 0 ? -errno : (int)fd;
}

static int errno_status(int err)
{
    switch (err) {
    case -ENOENT:
    case -ENOTDIR:
    case -ENAMETOOLONG:
        return 404;
    case -EXDEV:
    case -EACCES:
    case -EPERM:
    case -ELOOP:
        return 403;
    default:
        return 500;
    }
}

static int plain(cio_http_writer *w, int status)
{
    const char *t = cio_http_reason(status);
    return cio_http_send(w, status, "text/plain", t, strlen(t));
}

static const char *mime_type(const char *path)
{
    static const char *const map[][2] = {
        {".html", "text/html; charset=utf-8"},
        {".htm", "text/html; charset=utf-8"},
        {".txt", "text/plain; charset=utf-8"},
        {".css", "text/css"},
        {".js", "text/javascript"},
        {".json", "application/json"},
        {".png", "image/png"},
        {".jpg", "image/jpeg"},
        {".jpeg", "image/jpeg"},
        {".gif", "image/gif"},
        {".svg", "image/svg+xml"},
        {".wasm", "application/wasm"},
        {".pdf", "application/pdf"},
    };
    const char *dot = strrchr(path, '.');
    if (dot != NULL && strchr(dot, '/') == NULL)
        for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
            if (strcasecmp(dot, map[i][0]) == 0)
                return map[i][1];
    return "application/octet-stream";
}

/* Ranges in one request, at most; a Range header with more is ignored
 * (the whole file is served, as RFC 9110 14.2 allows), which bounds the
 * work one small header can ask for. */
#define MAX_RANGES 16

typedef struct byte_range {
    int64_t from, to; /* inclusive */
} byte_range;

/* Parse one range-spec of p[0..n) ("a-b", "a-" or "-n") against `size`:
 * 1 with *rg set, 0 when unsatisfiable, -1 when malformed. */
static int parse_spec(const char *p, size_t n, int64_t size, byte_range *rg)
{
    const char *e = p + n, *dash = memchr(p, '-', n);
    if (dash == NULL)
        return -1;
    int64_t v[2] = {-1, -1};
    for (int k = 0; k < 2; k++) {
        const char *q = k == 0 ? p : dash + 1, *qe = k == 0 ? dash : e;
        if (q == qe)
            continue;
        int64_t x = 0;
        for (; q < qe; q++) {
            if (*q < '0' || *q > '9' || x > (INT64_MAX - 9) / 10)
                return -1;
            x = x * 10 + (*q - '0');
        }
        v[k] = x;
    }
    if (v[0] < 0) { /* "-n": the last n bytes */
        if (v[1] < 0)
            return -1;
        if (v[1] == 0 || size == 0)
            return 0;
        rg->from = v[1] >= size ? 0 : size - v[1];
        rg->to = size - 1;
        return 1;
    }
    if (v[1] >= 0 && v[1] < v[0])
        return -1;
    if (v[0] >= size)
        return 0;
    rg->from = v[0];
    rg->to = v[1] < 0 || v[1] >= size ? size - 1 : v[1];
    return 1;
}

/* Parse a Range header ("bytes=" and one or more comma-separated specs)
 * against `size`: the number of satisfiable ranges stored in rg[] (at
 * most MAX_RANGES), 0 to ignore the header (malformed, or too many
 * ranges), -1 when none is satisfiable (416). */
static int parse_ranges(const char *h, int64_t size, byte_range *rg)
{
    if (strncmp(h, "bytes=", 6) != 0)
        return 0;
    int n = 0, specs = 0;
    const char *p = h + 6;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        size_t len = strcspn(p, ",");
        size_t tl = len;
        while (tl > 0 && (p[tl - 1] == ' ' || p[tl - 1] == '\t'))
            tl--;
        if (tl > 0) { /* empty list elements are allowed and skipped */
            if (++specs > MAX_RANGES)
                return 0;
            int r = parse_spec(p, tl, size, &rg[n]);
            if (r < 0)
                return 0;
            n += r;
        }
        if (p[len] == '\0')
            break;
        p += len + 1;
    }
    /* Overlapping ranges would send some bytes more than once: the
     * whole file instead, which is never longer (RFC 9110 14.2). */
    int64_t total = 0;
    for (int i = 0; i < n; i++)
        total += rg[i].to - rg[i].from + 1;
    if (n > 1 && total > size)
        return 0;
    return specs == 0 ? 0 : n == 0 ? -1 : n;
}

/* Send [from, from + len) of the file through `buf` (CHUNK bytes). */
static int write_range(cio_http_writer *w, int fd, char *buf, int64_t from,
                       int64_t len)
{
    int64_t off = from, left = len;
    while (left > 0) {
        size_t want = left > (int64_t)CHUNK ? CHUNK : (size_t)left;
        ssize_t n = cio_file_pread(fd, buf, want, off);
        if (n <= 0)
            return n < 0 ? (int)n : -EIO; /* the file shrank */
        int rc = cio_http_writer_write(w, buf, (size_t)n);
        if (rc < 0)
            return rc;
        off += n;
        left -= n;
    }
    return 0;
}

/* Whether the file's bytes may go by sendfile(2): a plain (not TLS)
 * connection on a readiness backend (epoll). io_uring reads and sends as
 * before: its writes are queued SENDs that a sendfile would overtake. */
static bool use_sendfile(const cio_http_writer *w)
{
    return cio__http_server_opts(w->c->hs)->tls == NULL &&
           cio__loop->bops->submit == NULL;
}

/* Send [from, from + len) of the file with sendfile(2), after what the
 * connection has queued (the head): the kernel copies page cache to the
 * socket. Waits for room under the write timeout. A failure leaves the
 * body cut short, so the writer is marked failed and the connection
 * closes. */
static int sendfile_range(cio_http_writer *w, int fd, int64_t from, int64_t len)
{
    hconn *c = w->c;
    int rc = cio_http_writer_write(w, NULL, 0); /* the head, if not out */
    if (rc == 0)
        rc = cio__http_conn_flush(c);
    int sfd = cio_stream_fd(c->s);
    off_t off = (off_t)from;
    int64_t left = len;
    int64_t timeout = cio__http_server_opts(c->hs)->write_timeout;
    while (rc == 0 && left > 0) {
        size_t want =
            left > (int64_t)(1 << 30) ? (size_t)1 << 30 : (size_t)left;
        ssize_t n = sendfile(sfd, fd, &off, want);
        if (n > 0) {
            left -= n;
            w->bytes += (uint64_t)n;
        } else if (n == 0) {
            rc = -EIO; /* the file shrank */
        } else if (errno == EAGAIN) {
            rc = cio_fd_wait(sfd, CIO_WRITABLE, cio_deadline_after(timeout));
            rc = rc > 0 ? 0 : rc;
        } else if (errno != EINTR) {
            rc = -errno;
            if (rc == -EPIPE) {
                /* The loop thread blocks SIGPIPE: take the one this
                 * raised so that it is not delivered later. */
                sigset_t ps;
                sigemptyset(&ps);
                sigaddset(&ps, SIGPIPE);
                struct timespec zero = {0, 0};
                while (sigtimedwait(&ps, NULL, &zero) == SIGPIPE)
                    ;
            }
        }
    }
    if (rc < 0) {
        w->failed = true;
        c->keep_alive = false;
    }
    return rc;
}

static int send_file(cio_http_writer *w, int fd, int64_t from, int64_t len,
                     bool head)
{
    int rc = cio_http_writer_length(w, len);
    if (rc < 0)
        return rc;
    if (head)
        return cio_http_writer_end(w); /* the length, and no reading */
    if (len > 0 && use_sendfile(w)) {
        rc = sendfile_range(w, fd, from, len);
        return rc < 0 ? rc : cio_http_writer_end(w);
    }
    char *buf = cio__malloc(CHUNK);
    if (buf == NULL)
        return -ENOMEM;
    rc = write_range(w, fd, buf, from, len);
    cio__free(buf);
    if (rc == 0)
        rc = cio_http_writer_end(w);
    return rc;
}

/* The part header before range i of a multipart/byteranges body into
 * `out` (>= 512 bytes); returns its length. */
static size_t part_head(char *out, const char *boundary, const char *type,
                        const byte_range *rg, int64_t size)
{
    int n = snprintf(out, 512,
                     "\r\n--%s\r\nContent-Type: %s\r\nContent-Range: "
                     "bytes %lld-%lld/%lld\r\n\r\n",
                     boundary, type, (long long)rg->from, (long long)rg->to,
                     (long long)size);
    return n < 0 ? 0 : (size_t)n >= 512 ? 511 : (size_t)n;
}

/* Several ranges: a 206 multipart/byteranges body (RFC 9110 14.6), each
 * part with its Content-Type and Content-Range, its length known in
 * advance. */
static int send_ranges(cio_http_writer *w, int fd, const byte_range *rg, int n,
                       int64_t size, const char *type, const char *etag,
                       bool head)
{
    /* Unique enough: the file's version and a counter. The parts are
     * framed by their lengths too, so a boundary inside the data cannot
     * confuse a client that reads Content-Range. */
    static _Thread_local uint64_t seq;
    char boundary[40], ct[96], ph[512];
    uint64_t hsh = 14695981039346656037u;
    for (const char *p = etag; *p; p++)
        hsh = (hsh ^ (unsigned char)*p) * 1099511628211u;
    snprintf(boundary, sizeof boundary, "cio-%016" PRIx64 "-%" PRIu64, hsh,
             ++seq);
    snprintf(ct, sizeof ct, "multipart/byteranges; boundary=%s", boundary);
    int64_t total = 0;
    for (int i = 0; i < n; i++)
        total += (int64_t)part_head(ph, boundary, type, &rg[i], size) +
                 (rg[i].to - rg[i].from + 1);
    int tail = snprintf(ph, sizeof ph, "\r\n--%s--\r\n", boundary);
    total += tail;
    int rc = cio_http_writer_header(w, "Content-Type", ct);
    if (rc == 0)
        rc = cio_http_writer_status(w, 206);
    if (rc == 0)
        rc = cio_http_writer_length(w, total);
    if (rc < 0 || head)
        return rc < 0 ? rc : cio_http_writer_end(w);
    char *buf = cio__malloc(CHUNK);
    if (buf == NULL)
        return -ENOMEM;
    for (int i = 0; i < n && rc == 0; i++) {
        size_t hl = part_head(ph, boundary, type, &rg[i], size);
        rc = cio_http_writer_write(w, ph, hl);
        int64_t len = rg[i].to - rg[i].from + 1;
        if (rc == 0)
            rc = use_sendfile(w) ? sendfile_range(w, fd, rg[i].from, len)
                                 : write_range(w, fd, buf, rg[i].from, len);
    }
    cio__free(buf);
    if (rc == 0) {
        snprintf(ph, sizeof ph, "\r\n--%s--\r\n", boundary);
        rc = cio_http_writer_write(w, ph, (size_t)tail);
    }
    if (rc == 0)
        rc = cio_http_writer_end(w);
    return rc;
}

/* Conditional GET: 304 when the validators match. */
static bool not_modified(cio_http_req *r, const char *etag,
                         const struct stat *sb)
{
    const char *inm = cio_http_req_header(r, "If-None-Match");
    if (inm != NULL)
        return strcmp(inm, "*") == 0 || strstr(inm, etag) != NULL;
    const char *ims = cio_http_req_header(r, "If-Modified-Since");
    if (ims != NULL) {
        int64_t t = cio__http_parse_date(ims);
        return t >= 0 && (int64_t)sb->st_mtime <= t;
    }
    return false;
}

static int serve_fd(cio_http_req *r, cio_http_writer *w, int fd,
                    const struct stat *sb, const char *name)
{
    char etag[64], lm[40];
    snprintf(etag, sizeof etag, "\"%" PRIx64 "-%" PRIx64 "\"",
             (uint64_t)sb->st_size,
             (uint64_t)sb->st_mtim.tv_sec * 1000000000u +
                 (uint64_t)sb->st_mtim.tv_nsec);
    cio__http_fmt_date(lm, (int64_t)sb->st_mtime);
    int rc = cio_http_writer_header(w, "ETag", etag);
    if (rc == 0)
        rc = cio_http_writer_header(w, "Last-Modified", lm);
    if (rc == 0)
        rc = cio_http_writer_header(w, "Accept-Ranges", "bytes");
    if (rc < 0)
        return rc;
    if (not_modified(r, etag, sb)) {
        cio_http_writer_status(w, 304);
        return cio_http_writer_end(w);
    }
    const char *type = mime_type(name);
    int64_t size = sb->st_size;
    byte_range rg[MAX_RANGES] = {{0, size - 1}};
    const char *range = cio_http_req_header(r, "Range");
    const char *ifr = cio_http_req_header(r, "If-Range");
    int pr = range && (ifr == NULL || strcmp(ifr, etag) == 0)
                 ? parse_ranges(range, size, rg)
                 : 0;
    bool head = strcmp(cio_http_req_method(r), "HEAD") == 0;
    char cr[96];
    if (pr < 0) {
        snprintf(cr, sizeof cr, "bytes */%lld", (long long)size);
        cio_http_writer_header(w, "Content-Range", cr);
        return plain(w, 416);
    }
    if (pr > 1)
        return send_ranges(w, fd, rg, pr, size, type, etag, head);
    rc = cio_http_writer_header(w, "Content-Type", type);
    if (rc < 0)
        return rc;
    if (pr == 1) {
        snprintf(cr, sizeof cr, "bytes %lld-%lld/%lld", (long long)rg[0].from,
                 (long long)rg[0].to, (long long)size);
        cio_http_writer_header(w, "Content-Range", cr);
        cio_http_writer_status(w, 206);
    } else {
        rg[0].from = 0;
        rg[0].to = size - 1;
    }
    return send_file(w, fd, rg[0].from,
                     size == 0 ? 0 : rg[0].to - rg[0].from + 1, head);
}

int cio_http_static_handler(cio_http_req *r, cio_http_writer *w, void *arg)
{
    cio_http_static *st = arg;
    const char *m = cio_http_req_method(r);
    if (strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0) {
        cio_http_writer_header(w, "Allow", "GET, HEAD");
        return plain(w, 405);
    }
    const char *path = cio_http_req_param(r, "path");
    if (path == NULL)
        path = cio_http_req_path(r);
    int status = check_path(path);
    if (status != 0)
        return plain(w, status);
    while (*path == '/')
        path++;
    int fd = open_beneath(st->dirfd, path);
    if (fd < 0)
        return plain(w, errno_status(fd));
    struct stat sb;
    int rc = fstat(fd, &sb) == 0 ? 0 : -errno;
    if (rc == 0 && S_ISDIR(sb.st_mode)) {
        int dfd = fd;
        fd = openat(dfd, "index.html", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        close(dfd);
        if (fd < 0)
            return plain(w, errno == ENOENT ? 404 : 403);
        rc = fstat(fd, &sb) == 0 ? 0 : -errno;
        path = "index.html";
    }
    if (rc == 0 && !S_ISREG(sb.st_mode))
        rc = -EACCES;
    if (rc < 0)
        rc = plain(w, errno_status(rc));
    else
        rc = serve_fd(r, w, fd, &sb, path);
    close(fd);
    return rc;
}
