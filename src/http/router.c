/* Routing by method and path pattern, middleware chains, request logs. */
#include <strings.h>
#include <unistd.h>

#include "server_int.h"

typedef struct route {
    char *method;  /* "*" for any */
    char *pattern; /* starts with '/' */
    cio_http_handler fn;
    void *arg;
} route;

typedef struct mw {
    cio_http_middleware fn;
    void *arg;
} mw;

struct cio_http_router {
    route *routes;
    size_t nroutes, cap;
    mw *mws;
    size_t nmws;
};

struct cio_http_next {
    cio_http_router *rt;
    size_t i; /* next middleware; nmws: the routing itself */
};

int cio_http_router_new(cio_http_router **out)
{
    if (out == NULL)
        return -EINVAL;
    cio_http_router *rt = cio__calloc(1, sizeof *rt);
    if (rt == NULL)
        return -ENOMEM;
    *out = rt;
    return 0;
}

void cio_http_router_free(cio_http_router *rt)
{
    if (rt == NULL)
        return;
    for (size_t i = 0; i < rt->nroutes; i++) {
        cio__free(rt->routes[i].method);
        cio__free(rt->routes[i].pattern);
    }
    cio__free(rt->routes);
    cio__free(rt->mws);
    cio__free(rt);
}

static int check_pattern(const char *p)
{
    if (p[0] != '/')
        return -EINVAL;
    for (const char *s = p; *s; s++) {
        if (*s != '{')
            continue;
        if (s[-1] != '/')
            return -EINVAL;
        const char *e = strchr(s, '}');
        if (e == NULL || e == s + 1 || (e[1] != '/' && e[1] != '\0'))
            return -EINVAL;
        if (e - s > 4 && memcmp(e - 3, "...", 3) == 0 && e[1] != '\0')
            return -EINVAL;
        s = e;
    }
    return 0;
}

int cio_http_router_add(cio_http_router *rt, const char *method,
                        const char *pattern, cio_http_handler fn, void *arg)
{
    if (rt == NULL || method == NULL || pattern == NULL || fn == NULL ||
        *method == '\0' || check_pattern(pattern) < 0)
        return -EINVAL;
    if (rt->nroutes == rt->cap) {
        size_t cap = rt->cap ? rt->cap * 2 : 8;
        route *v = cio__realloc(rt->routes, cap * sizeof *v);
        if (v == NULL)
            return -ENOMEM;
        rt->routes = v;
        rt->cap = cap;
    }
    route *r = &rt->routes[rt->nroutes];
    r->method = cio__strdup(method);
    r->pattern = cio__strdup(pattern);
    if (r->method == NULL || r->pattern == NULL) {
        cio__free(r->method);
        cio__free(r->pattern);
        return -ENOMEM;
    }
    r->fn = fn;
    r->arg = arg;
    rt->nroutes++;
    return 0;
}

int cio_http_router_use(cio_http_router *rt, cio_http_middleware fn, void *arg)
{
    if (rt == NULL || fn == NULL)
        return -EINVAL;
    mw *v = cio__realloc(rt->mws, (rt->nmws + 1) * sizeof *v);
    if (v == NULL)
        return -ENOMEM;
    rt->mws = v;
    v[rt->nmws].fn = fn;
    v[rt->nmws].arg = arg;
    rt->nmws++;
    return 0;
}

static int add_param(cio_http_req *r, const char *name, size_t nl,
                     const char *val, size_t vl)
{
    if (r->nparams == CIO__HTTP_MAX_PARAMS)
        return -ENOSPC;
    size_t no = r->params.len;
    int rc = cio__hbuf_add(&r->params, name, nl);
    if (rc == 0)
        rc = cio__hbuf_add(&r->params, "", 1);
    size_t vo = r->params.len;
    if (rc == 0)
        rc = cio__hbuf_add(&r->params, val, vl);
    if (rc == 0)
        rc = cio__hbuf_add(&r->params, "", 1);
    if (rc < 0)
        return rc;
    r->poff[2 * r->nparams] = no;
    r->poff[2 * r->nparams + 1] = vo;
    r->nparams++;
    return 0;
}

/* Match the decoded path against `pat`, recording parameters. */
static bool match(cio_http_req *r, const char *pat, const char *path)
{
    r->nparams = 0;
    r->params.len = 0;
    while (*pat) {
        if (*pat == '{') {
            const char *e = strchr(pat, '}');
            size_t nl = (size_t)(e - pat - 1);
            bool tail = nl > 3 && memcmp(e - 3, "...", 3) == 0;
            size_t vl = tail ? strlen(path) : strcspn(path, "/");
            if ((!tail && vl == 0) ||
                add_param(r, pat + 1, tail ? nl - 3 : nl, path, vl) < 0)
                return false;
            path += vl;
            pat = e + 1;
            continue;
        }
        if (*pat != *path)
            return false;
        pat++;
        path++;
    }
    return *path == '\0';
}

static bool method_ok(const route *rt, const char *m)
{
    return strcmp(rt->method, "*") == 0 || strcmp(rt->method, m) == 0 ||
           (strcmp(m, "HEAD") == 0 && strcmp(rt->method, "GET") == 0);
}

static int dispatch(cio_http_router *rt, cio_http_req *r, cio_http_writer *w)
{
    hbuf allow = {0};
    const route *hit = NULL;
    for (size_t i = 0; i < rt->nroutes && hit == NULL; i++) {
        route *ro = &rt->routes[i];
        if (!match(r, ro->pattern, r->path))
            continue;
        if (method_ok(ro, r->method))
            hit = ro;
        else
            cio__hbuf_addf(&allow, "%s%s", allow.len ? ", " : "", ro->method);
    }
    int rc;
    if (hit != NULL) {
        rc = hit->fn(r, w, hit->arg);
    } else if (allow.len) {
        rc = cio_http_writer_header(w, "Allow", allow.p);
        if (rc == 0)
            rc =
                cio_http_send(w, 405, "text/plain", "Method Not Allowed\n", 19);
    } else {
        r->nparams = 0;
        rc = cio_http_send(w, 404, "text/plain", "Not Found\n", 10);
    }
    if (allow.p != NULL)
        cio__hbuf_free(&allow);
    return rc;
}

int cio_http_next_call(const cio_http_next *next, cio_http_req *r,
                       cio_http_writer *w)
{
    if (next->i < next->rt->nmws) {
        cio_http_next n = {next->rt, next->i + 1};
        mw *m = &next->rt->mws[next->i];
        return m->fn(r, w, &n, m->arg);
    }
    return dispatch(next->rt, r, w);
}

int cio_http_router_handler(cio_http_req *r, cio_http_writer *w, void *arg)
{
    cio_http_next n = {arg, 0};
    return cio_http_next_call(&n, r, w);
}

int cio_http_log_middleware(cio_http_req *r, cio_http_writer *w,
                            const cio_http_next *next, void *arg)
{
    int64_t t0 = cio_now();
    int rc = cio_http_next_call(next, r, w);
    char peer[64] = "-";
    cio_addr_format(cio_http_req_peer(r), peer, sizeof peer);
    char line[512];
    int n = snprintf(
        line, sizeof line, "%s %s %.300s %d %llu %lld%s%s\n", peer, r->method,
        r->target, rc < 0 && !w->started ? 500 : w->status,
        (unsigned long long)w->bytes, (long long)((cio_now() - t0) / CIO_USEC),
        rc < 0 ? " error=" : "", rc < 0 ? cio_err_name(rc) : "");
    if (n > (int)sizeof line - 1)
        n = (int)sizeof line - 1;
    if (arg != NULL && write(*(int *)arg, line, (size_t)n) < 0)
        (void)0; /* a lost log line must not fail the request */
    return rc;
}
