/* WebSocket: cio against itself, Node's built-in client, a plain Node
 * server, and raw frames that break the protocol. */
#include <cio/websocket.h>

#include "test_http_util.h"

/* ---- An echo server ------------------------------------------------------ */

static int ws_echo(cio_http_req *r, cio_http_writer *w, void *arg)
{
    (void)arg;
    cio_ws *ws;
    cio_ws_opts o = {.max_message = 1 << 20, .protocol = "chat"};
    int rc = cio_ws_accept(&ws, r, w, &o);
    if (rc < 0)
        return rc == -EPROTO ? 0 : rc;
    for (;;) {
        const void *d;
        size_t n;
        int type = cio_ws_recv(ws, &d, &n);
        if (type < 0)
            break;
        if (n == 5 && memcmp(d, "close", 5) == 0) {
            cio_ws_close(ws, 4002, "as asked");
            return 0;
        }
        rc = cio_ws_send(ws, type, d, n);
        if (rc < 0)
            break;
    }
    return cio_ws_close(ws, 0, NULL) == -ECANCELED ? -ECANCELED : 0;
}

/* The router hangs off the server's handler argument: keep it to free. */
static cio_http_router *router_of_last;

static int start_server(cio_http_server **s)
{
    int rc = cio_http_router_new(&router_of_last);
    if (rc == 0)
        rc = cio_http_router_add(router_of_last, "GET", "/ws", ws_echo, NULL);
    if (rc == 0)
        rc = hu_start(s, cio_http_router_handler, router_of_last, NULL);
    return rc;
}

static void stop_server(cio_http_server *s)
{
    cio_http_server_close(s, CIO_SEC);
    cio_http_router_free(router_of_last);
}

TEST_REALTIME(ws_cio_to_cio_echo)
{
    cio_http_server *s;
    ASSERT_OK(start_server(&s));
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/ws", hu_port(s));
    cio_ws *ws;
    int status = 0;
    ASSERT_OK(cio_ws_connect(&ws, url, NULL, &status));
    ASSERT_EQ(101, status);
    ASSERT_OK(cio_ws_send(ws, CIO_WS_TEXT, "hello", 5));
    const void *d;
    size_t n;
    ASSERT_EQ(CIO_WS_TEXT, cio_ws_recv(ws, &d, &n));
    ASSERT_TRUE(n == 5 && memcmp(d, "hello", 5) == 0);
    /* Big binary: 64-bit length form. */
    static char big[200000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (char)(i * 7);
    ASSERT_OK(cio_ws_send(ws, CIO_WS_BINARY, big, sizeof big));
    ASSERT_EQ(CIO_WS_BINARY, cio_ws_recv(ws, &d, &n));
    ASSERT_TRUE(n == sizeof big && memcmp(d, big, n) == 0);
    ASSERT_OK(cio_ws_ping(ws, "p", 1));
    ASSERT_OK(cio_ws_send(ws, CIO_WS_TEXT, "", 0));
    ASSERT_EQ(CIO_WS_TEXT, cio_ws_recv(ws, &d, &n)); /* the pong skipped */
    ASSERT_EQ(0, n);
    ASSERT_EQ(-EINVAL, cio_ws_send(ws, CIO_WS_TEXT, "\xff", 1));
    /* The server closes with 4002. */
    ASSERT_OK(cio_ws_send(ws, CIO_WS_TEXT, "close", 5));
    ASSERT_EQ(CIO_EOF, cio_ws_recv(ws, &d, &n));
    ASSERT_EQ(4002, cio_ws_close_code(ws));
    ASSERT_EQ(-EPIPE, cio_ws_send(ws, CIO_WS_TEXT, "x", 1));
    ASSERT_OK(cio_ws_close(ws, 0, NULL));
    /* A client-initiated close. */
    ASSERT_OK(cio_ws_connect(&ws, url, NULL, NULL));
    ASSERT_OK(cio_ws_close(ws, CIO_WS_GOING_AWAY, "done"));
    stop_server(s);
    return 0;
}

TEST_REALTIME(ws_handshake_refusals)
{
    cio_http_server *s;
    ASSERT_OK(start_server(&s));
    int port = hu_port(s);
    char buf[2048];
    const char plain[] = "GET /ws HTTP/1.1\r\nHost: x\r\n\r\n";
    ASSERT_OK(hu_raw(port, plain, sizeof plain - 1, buf, sizeof buf, 3000));
    ASSERT_EQ(400, hu_status(buf));
    const char v8[] = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Version: 8\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
    ASSERT_OK(hu_raw(port, v8, sizeof v8 - 1, buf, sizeof buf, 3000));
    ASSERT_EQ(426, hu_status(buf));
    ASSERT_TRUE(strstr(buf, "Sec-WebSocket-Version: 13") != NULL);
    const char badkey[] = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket"
                          "\r\nConnection: Upgrade\r\nSec-WebSocket-Version:"
                          " 13\r\nSec-WebSocket-Key: short\r\n\r\n";
    ASSERT_OK(hu_raw(port, badkey, sizeof badkey - 1, buf, sizeof buf, 3000));
    ASSERT_EQ(400, hu_status(buf));
    /* The RFC's own example key and answer, and the protocol chosen. */
    const char good[] = "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                        "Connection: keep-alive, Upgrade\r\n"
                        "Sec-WebSocket-Version: 13\r\n"
                        "Sec-WebSocket-Protocol: x, chat\r\n"
                        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
                        "\x88\x82\x01\x02\x03\x04\x02\xea"; /* close 1000 */
    ASSERT_OK(hu_raw(port, good, sizeof good - 1, buf, sizeof buf, 3000));
    ASSERT_EQ(101, hu_status(buf));
    ASSERT_TRUE(strstr(buf, "Sec-WebSocket-Accept: "
                            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n") != NULL);
    ASSERT_TRUE(strstr(buf, "Sec-WebSocket-Protocol: chat\r\n") != NULL);
    char *body = strstr(buf, "\r\n\r\n") + 4;
    ASSERT_TRUE(memcmp(body, "\x88\x02\x03\xe8", 4) == 0); /* close echoed */
    stop_server(s);
    return 0;
}

static const char upgrade[] = "GET /ws HTTP/1.1\r\nHost: x\r\n"
                              "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                              "Sec-WebSocket-Version: 13\r\n"
                              "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                              "\r\n";

/* The close code the server answers a raw frame sequence with. */
static int close_code_for(int port, const char *frames, size_t n, int ms)
{
    char req[1024];
    memcpy(req, upgrade, sizeof upgrade - 1);
    memcpy(req + sizeof upgrade - 1, frames, n);
    static char buf[4096];
    ssize_t got =
        hu_raw(port, req, sizeof upgrade - 1 + n, buf, sizeof buf, ms);
    if (got < 0)
        return (int)got;
    char *p = strstr(buf, "\r\n\r\n");
    if (p == NULL)
        return -1;
    p += 4;
    /* Skip echoed data frames up to the close frame. */
    while (p < buf + got && ((unsigned char)p[0] & 0x0F) != 8)
        p += 2 + ((unsigned char)p[1] & 0x7F);
    if (p + 4 > buf + got)
        return 0;
    return (unsigned char)p[2] << 8 | (unsigned char)p[3];
}

TEST_REALTIME(ws_protocol_violations_close_with_the_right_code)
{
    cio_http_server *s;
    ASSERT_OK(start_server(&s));
    int port = hu_port(s);
    static const struct {
        const char *name;
        const char *frames;
        size_t n;
        int code;
    } cases[] = {
        {"unmasked frame", "\x81\x02hi", 4, 1002},
        {"reserved bits", "\xc1\x80\0\0\0\0", 6, 1002},
        {"unknown opcode", "\x83\x80\0\0\0\0", 6, 1002},
        {"fragmented ping", "\x09\x80\0\0\0\0", 6, 1002},
        {"long control frame", "\x89\xfe\0\x7e\0\0\0\0", 8, 1002},
        {"continuation first", "\x80\x80\0\0\0\0", 6, 1002},
        {"new message mid-fragments", "\x01\x80\0\0\0\0\x81\x80\0\0\0\0", 12,
         1002},
        {"bad UTF-8", "\x81\x82\0\0\0\0\xc3\x28", 8, 1007},
        {"surrogate in UTF-8", "\x81\x83\0\0\0\0\xed\xa0\x80", 9, 1007},
        {"non-minimal length", "\x82\xfe\0\x05\0\0\0\0hello", 13, 1002},
        {"too big", "\x82\xff\0\0\0\0\0\x20\0\0\0\0\0\0", 14, 1009},
        {"close code 1005", "\x88\x82\0\0\0\0\x03\xed", 8, 1002},
        {"close 1 byte", "\x88\x81\0\0\0\0\x03", 7, 1002},
        {"close code 999", "\x88\x82\0\0\0\0\x03\xe7", 8, 1002},
        {"close ok 4000", "\x88\x82\0\0\0\0\x0f\xa0", 8, 4000},
        {"fragments then close",
         "\x01\x81\0\0\0\0a\x80\x81\0\0\0\0b\x88\x80\0\0\0\0", 21, 0},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int code = close_code_for(port, cases[i].frames, cases[i].n, 3000);
        if (code != cases[i].code) {
            fprintf(stderr, "  case '%s': close code %d, want %d\n",
                    cases[i].name, code, cases[i].code);
            bad++;
        }
    }
    ASSERT_EQ(0, bad);
    stop_server(s);
    return 0;
}

/* ---- Node peers ---------------------------------------------------------- */

TEST_REALTIME(ws_node_client_against_cio_server)
{
    cio_http_server *s;
    ASSERT_OK(start_server(&s));
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/ws", hu_port(s));
    char *argv[] = {"node", "--no-warnings", (char *)hu_peer("ws_client.js"),
                    url, NULL};
    char out[512];
    int rc = hu_run(argv, NULL, out, sizeof out);
    if ((rc == -ENOENT || rc == 77) && !getenv("CIO_TEST_REQUIRE_SERVERS")) {
        stop_server(s);
        CIO_TEST_SKIP("no Node WebSocket client (node, and npm's ws)");
    }
    ASSERT_EQ(0, rc);
    ASSERT_STR_EQ("text:héllo wörld|bin:0,1,2,255|text:70000\n"
                  "close 4000 bye\n",
                  out);
    stop_server(s);
    return 0;
}

TEST_REALTIME(ws_cio_client_against_node_server)
{
    char *argv[] = {"node", (char *)hu_peer("ws_server.js"), NULL};
    cio_process_opts po = {.stdin_mode = CIO_PROC_PIPE,
                           .stdout_mode = CIO_PROC_PIPE};
    cio_process *p;
    int rc = cio_process_spawn(&p, "node", argv, &po);
    if (rc == -ENOENT && !getenv("CIO_TEST_REQUIRE_SERVERS"))
        CIO_TEST_SKIP("node is not installed");
    ASSERT_OK(rc);
    char line[32];
    ssize_t n =
        cio_stream_readline(cio_process_stdout(p), line, sizeof line - 1);
    ASSERT_TRUE(n > 0);
    line[n] = '\0';
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/x", atoi(line));
    cio_ws *ws;
    ASSERT_OK(cio_ws_connect(&ws, url, NULL, NULL));
    const void *d;
    size_t len;
    ASSERT_OK(cio_ws_send(ws, CIO_WS_TEXT, "ping me", 7));
    ASSERT_EQ(CIO_WS_TEXT, cio_ws_recv(ws, &d, &len));
    ASSERT_TRUE(len == 7 && memcmp(d, "ping me", 7) == 0);
    static char big[100000];
    memset(big, 'b', sizeof big);
    ASSERT_OK(cio_ws_send(ws, CIO_WS_BINARY, big, sizeof big));
    ASSERT_EQ(CIO_WS_BINARY, cio_ws_recv(ws, &d, &len));
    ASSERT_EQ(sizeof big, len);
    /* Fragments with a ping between them, reassembled. */
    ASSERT_OK(cio_ws_send(ws, CIO_WS_TEXT, "fragments", 9));
    ASSERT_EQ(CIO_WS_TEXT, cio_ws_recv(ws, &d, &len));
    ASSERT_TRUE(len == 9 && memcmp(d, "abcdefghi", 9) == 0);
    /* The server closes. */
    ASSERT_OK(cio_ws_send(ws, CIO_WS_TEXT, "close-me", 8));
    ASSERT_EQ(CIO_EOF, cio_ws_recv(ws, &d, &len));
    ASSERT_EQ(4001, cio_ws_close_code(ws));
    ASSERT_OK(cio_ws_close(ws, 0, NULL));
    /* And a client close, answered by the server. */
    ASSERT_OK(cio_ws_connect(&ws, url, NULL, NULL));
    ASSERT_OK(cio_ws_close(ws, 4005, "client bye"));
    ASSERT_OK(cio_stream_write_eof(cio_process_stdin(p)));
    int status;
    ASSERT_OK(cio_process_wait(p, &status));
    cio_process_free(p);
    return 0;
}

TEST_REALTIME(ws_recv_timeout_keeps_the_socket_usable)
{
    cio_http_server *s;
    ASSERT_OK(start_server(&s));
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/ws", hu_port(s));
    cio_ws_opts o = {.recv_timeout = 50 * CIO_MSEC};
    cio_ws *ws;
    ASSERT_OK(cio_ws_connect(&ws, url, &o, NULL));
    const void *d;
    size_t n;
    ASSERT_EQ(-ETIMEDOUT, cio_ws_recv(ws, &d, &n));
    ASSERT_OK(cio_ws_send(ws, CIO_WS_TEXT, "again", 5));
    ASSERT_EQ(CIO_WS_TEXT, cio_ws_recv(ws, &d, &n));
    ASSERT_TRUE(n == 5 && memcmp(d, "again", 5) == 0);
    ASSERT_OK(cio_ws_close(ws, 0, NULL));
    stop_server(s);
    return 0;
}

TEST_REALTIME(ws_connect_errors)
{
    cio_ws *ws;
    ASSERT_EQ(-EINVAL, cio_ws_connect(&ws, "nothing", NULL, NULL));
    ASSERT_EQ(-EPROTONOSUPPORT,
              cio_ws_connect(&ws, "ftp://127.0.0.1/", NULL, NULL));
    /* An HTTP server that does not switch protocols. */
    cio_http_server *s;
    ASSERT_OK(start_server(&s));
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/nope", hu_port(s));
    int status = 0;
    ASSERT_EQ(CIO_EHTTP, cio_ws_connect(&ws, url, NULL, &status));
    ASSERT_EQ(404, status);
    stop_server(s);
    return 0;
}

/* Mutated frame sequences: the server answers, closes or drops the
 * connection, and keeps serving. */
TEST_REALTIME(ws_mutated_frames_never_break_the_server)
{
    cio_http_server *s;
    ASSERT_OK(start_server(&s));
    int port = hu_port(s);
    static const char seed[] = "\x81\x85\x01\x02\x03\x04"
                               "iguhn"                     /* text */
                               "\x01\x82\0\0\0\0ab"        /* fragment */
                               "\x89\x81\0\0\0\0p"         /* ping */
                               "\x80\x81\0\0\0\0c"         /* last */
                               "\x88\x82\0\0\0\0\x03\xe8"; /* close */
    uint64_t rng = 0x2545F4914F6CDD1Du;
    int rounds = getenv("CIO_TEST_LIGHT") ? 30 : 120;
    static char frames[128];
    for (int i = 0; i < rounds; i++) {
        size_t n = sizeof seed - 1;
        memcpy(frames, seed, n);
        for (int k = 0; k < 2; k++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            size_t at = (size_t)(rng % n);
            if ((rng >> 40) % 3 == 0)
                n = at + 1; /* cut */
            else
                frames[at] ^= (char)(1u << ((rng >> 32) % 8));
        }
        int code = close_code_for(port, frames, n, 100);
        ASSERT_TRUE(code >= 0);
    }
    cio_ws *ws;
    char url[64];
    snprintf(url, sizeof url, "ws://127.0.0.1:%d/ws", port);
    ASSERT_OK(cio_ws_connect(&ws, url, NULL, NULL));
    ASSERT_OK(cio_ws_send(ws, CIO_WS_TEXT, "still here", 10));
    const void *d;
    size_t len;
    ASSERT_EQ(CIO_WS_TEXT, cio_ws_recv(ws, &d, &len));
    ASSERT_OK(cio_ws_close(ws, 0, NULL));
    stop_server(s);
    return 0;
}
