/* Private to src/http: the server's connection, request and writer. */
#ifndef CIO_HTTP_SERVER_INT_H
#define CIO_HTTP_SERVER_INT_H

#include <llhttp.h>

#include "http_int.h"

#define CIO__HTTP_MAX_PARAMS 16

typedef struct hconn hconn;
struct hconn {
    cio_http_server *hs;
    cio_stream *s;
    llhttp_t p;
    hconn *prev, *next;    /* the server's list */
    cio_scope scope;       /* the connection's: ended to close it idle */
    cio_scope *idle;       /* &scope while waiting for a next request */
    bool reaped;           /* the reaper cancelled scope */
    int64_t idle_deadline; /* when the reaper ends that wait */
    cio_addr peer;
    hbuf url;  /* the request target being parsed */
    hlist hdr; /* its headers */
    size_t head_bytes;
    int perr; /* status to answer a bad message with */
    bool head_done, msg_done, keep_alive, upgraded;
    char last; /* the previous byte of the head */
    hbuf body; /* parsed body bytes not yet read */
    size_t body_off;
    uint64_t body_total;
    hbuf out; /* response bytes being assembled */
    cio_http_writer *w;
};

struct cio_http_req {
    hconn *c;
    const char *method; /* llhttp's static name */
    const char *target, *path, *query;
    hbuf pathbuf;
    int version;
    int64_t clen;
    bool expect_continue, continue_sent;
    int body_err; /* the error the body stream hit */
    hbuf whole;   /* cio_http_req_body's buffer */
    hbuf params;  /* route parameters: name\0value\0... */
    size_t nparams;
    size_t poff[CIO__HTTP_MAX_PARAMS * 2];
};

struct cio_http_writer {
    hconn *c;
    int status;
    hbuf hdrs;      /* "Name: value\r\n" lines */
    int64_t length; /* declared body length, -1 none */
    uint64_t bytes; /* body bytes written */
    bool started, ended, chunked, close, head_only, no_body, failed;
};

/* The head of the last response cio_http_send built on a server (whose
 * Server name does not change), reused while every input of it is the
 * same: one copy instead of a build per response. */
typedef struct cio__http_head_cache {
    size_t len;  /* 0: empty */
    int64_t sec; /* of the Date line */
    int status;
    int conn; /* 0 keep-alive, 1 close, 2 HTTP/1.0 keep-alive */
    int64_t length;
    char ctype[64]; /* the Content-Type value, NUL-terminated */
    char head[256];
} cio__http_head_cache;

cio__http_head_cache *cio__http_server_head_cache(cio_http_server *s);

/* Wait, under the write timeout, until everything written on the
 * connection went to the kernel. */
int cio__http_conn_flush(hconn *c);
/* Send bytes on the connection under the write timeout. */
int cio__http_conn_send(hconn *c, const void *p, size_t n);
const char *cio__http_server_name(const cio_http_server *s);
bool cio__http_server_closing(const cio_http_server *s);
const cio_http_server_opts *cio__http_server_opts(const cio_http_server *s);
/* Read more of the body into c->body under the body timeout. */
int cio__http_conn_feed_body(hconn *c);

#endif
