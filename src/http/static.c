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

/* Parse a single "bytes=a-b" range against `size`: 1 with [*from, *to]
 * set, 0 to ignore the header (serve the whole file), -1 unsatisfiable. */
static int parse_range(const char *h, int64_t size, int64_t *from, int64_t *to)
{
    if (strncmp(h, "bytes=", 6) != 0 || strchr(h, ',') != NULL)
        return 0;
    const char *p = h + 6;
    char *end;
    if (*p == '-') {
        if (p[1] < '0' || p[1] > '9')
            return 0;
        long long n = strtoll(p + 1, &end, 10);
        if (*end != '\0' || n < 0)
            return 0;
        if (n == 0 || size == 0)
            return -1;
        *from = n >= size ? 0 : size - n;
        *to = size - 1;
        return 1;
    }
    if (*p < '0' || *p > '9')
        return 0;
    long long a = strtoll(p, &end, 10);
    if (*end != '-')
        return 0;
    p = end + 1;
    long long b = size - 1;
    if (*p != '\0') {
        if (*p < '0' || *p > '9')
            return 0;
        b = strtoll(p, &end, 10);
        if (*end != '\0' || b < a)
            return 0;
    }
    if (a >= size)
        return -1;
    *from = a;
    *to = b >= size ? size - 1 : b;
    return 1;
}

static int send_file(cio_http_writer *w, int fd, int64_t from, int64_t len,
                     bool head)
{
    int rc = cio_http_writer_length(w, len);
    if (rc < 0)
        return rc;
    if (head)
        return cio_http_writer_end(w); /* the length, and no reading */
    char *buf = cio__malloc(CHUNK);
    if (buf == NULL)
        return -ENOMEM;
    int64_t off = from, left = len;
    while (left > 0 && rc == 0) {
        size_t want = left > (int64_t)CHUNK ? CHUNK : (size_t)left;
        ssize_t n = cio_file_pread(fd, buf, want, off);
        if (n <= 0) {
            rc = n < 0 ? (int)n : -EIO; /* the file shrank */
            break;
        }
        rc = cio_http_writer_write(w, buf, (size_t)n);
        off += n;
        left -= n;
    }
    cio__free(buf);
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
    rc = cio_http_writer_header(w, "Content-Type", mime_type(name));
    if (rc < 0)
        return rc;
    int64_t size = sb->st_size, from = 0, to = size - 1;
    const char *range = cio_http_req_header(r, "Range");
    const char *ifr = cio_http_req_header(r, "If-Range");
    int pr = range && (ifr == NULL || strcmp(ifr, etag) == 0)
                 ? parse_range(range, size, &from, &to)
                 : 0;
    char cr[96];
    if (pr < 0) {
        snprintf(cr, sizeof cr, "bytes */%lld", (long long)size);
        cio_http_writer_header(w, "Content-Range", cr);
        return plain(w, 416);
    }
    if (pr > 0) {
        snprintf(cr, sizeof cr, "bytes %lld-%lld/%lld", (long long)from,
                 (long long)to, (long long)size);
        cio_http_writer_header(w, "Content-Range", cr);
        cio_http_writer_status(w, 206);
    }
    return send_file(w, fd, from, size == 0 ? 0 : to - from + 1,
                     strcmp(cio_http_req_method(r), "HEAD") == 0);
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
