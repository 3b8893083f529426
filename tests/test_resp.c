/* The RESP2/RESP3 parser and encoder, without a server: every type, input
 * split at every byte boundary, pipelined replies, limits, malformed
 * input, allocation failures. */
#include <math.h>

#include "test.h"
#include "internal.h"
#include "db/resp.h"

/* A one-line text form of a reply tree, to compare with expectations. */
static void dump_to(const cio_redis_reply *r, char *out, size_t size,
                    size_t *pos)
{
#define PUT(...)                                                               \
    do {                                                                       \
        int k_ = snprintf(out + *pos, size - *pos, __VA_ARGS__);               \
        *pos += (k_ > 0 && (size_t)k_ < size - *pos) ? (size_t)k_ : 0;         \
    } while (0)
    const char *open = NULL;
    switch (r->type) {
    case CIO_REDIS_STRING:
        PUT("$%zu:", r->len);
        for (size_t i = 0; i < r->len; i++)
            PUT(r->str[i] ? "%c" : "\\0", r->str[i]);
        return;
    case CIO_REDIS_STATUS:
        PUT("+%s", r->str);
        return;
    case CIO_REDIS_ERROR:
        PUT("-%s", r->str);
        return;
    case CIO_REDIS_INTEGER:
        PUT(":%lld", r->integer);
        return;
    case CIO_REDIS_NIL:
        PUT("nil");
        return;
    case CIO_REDIS_DOUBLE:
        PUT(",%g", r->dval);
        return;
    case CIO_REDIS_BOOL:
        PUT("#%c", r->integer ? 't' : 'f');
        return;
    case CIO_REDIS_BIGNUM:
        PUT("(%s", r->str);
        return;
    case CIO_REDIS_VERB:
        PUT("=%s:%s", r->vtype, r->str);
        return;
    case CIO_REDIS_ARRAY:
        open = "[";
        break;
    case CIO_REDIS_MAP:
        open = "%[";
        break;
    case CIO_REDIS_SET:
        open = "~[";
        break;
    case CIO_REDIS_PUSH:
        open = ">[";
        break;
    default:
        PUT("?");
        return;
    }
    PUT("%s", open);
    for (size_t i = 0; i < r->len; i++) {
        if (i > 0)
            PUT(",");
        dump_to(r->elem[i], out, size, pos);
    }
    PUT("]");
#undef PUT
}

static const char *dump(const cio_redis_reply *r)
{
    static char buf[4096];
    size_t pos = 0;
    buf[0] = '\0';
    dump_to(r, buf, sizeof buf, &pos);
    return buf;
}

/* Feed `in` to a fresh parser in pieces cut at the offsets `cuts` (the
 * last must be len), keeping unconsumed bytes as a real reader does.
 * Returns the last parse result; *out the reply, *left the bytes left. */
static int feed_cuts(const char *in, size_t len, const size_t *cuts,
                     size_t ncuts, cio_redis_reply **out, size_t *left,
                     const cio_redis_limits *lim)
{
    static char buf[1 << 16];
    (void)len;
    cio__resp_parser p;
    cio__resp_init(&p, lim);
    size_t have = 0, pos = 0;
    int rc = 0;
    *out = NULL;
    for (size_t i = 0; i < ncuts; i++) {
        memcpy(buf + have, in + pos, cuts[i] - pos);
        have += cuts[i] - pos;
        pos = cuts[i];
        size_t used = 99999;
        rc = cio__resp_parse(&p, buf, have, &used, out);
        if (used > have)
            return -1000;
        memmove(buf, buf + used, have - used);
        have -= used;
        if (rc != 0)
            break;
    }
    if (rc <= 0)
        cio__resp_reset(&p);
    else if (cio__resp_busy(&p))
        return -1001;
    *left = have;
    return rc;
}

/* Parse `in` whole, split once at every offset, and a byte at a time:
 * each must give one reply whose dump is `want`, consuming everything. */
static int check_all_splits(const char *in, size_t len, const char *want)
{
    cio_redis_reply *r;
    size_t left;
    size_t cuts[2];
    for (size_t k = 0; k <= len; k++) {
        cuts[0] = k;
        cuts[1] = len;
        int rc = feed_cuts(in, len, cuts, 2, &r, &left, NULL);
        ASSERT_EQ(1, rc);
        ASSERT_EQ(0, left);
        ASSERT_STR_EQ(want, dump(r));
        cio_redis_reply_free(r);
    }
    size_t *each = malloc(len * sizeof *each);
    for (size_t k = 0; k < len; k++)
        each[k] = k + 1;
    int rc = feed_cuts(in, len, each, len, &r, &left, NULL);
    free(each);
    ASSERT_EQ(1, rc);
    ASSERT_EQ(0, left);
    ASSERT_STR_EQ(want, dump(r));
    cio_redis_reply_free(r);
    return 0;
}

#define CHECK(in, want)                                                        \
    ASSERT_OK(check_all_splits((in), sizeof(in) - 1, (want)))

TEST(resp_resp2_types_at_every_split)
{
    CHECK("+OK\r\n", "+OK");
    CHECK("-ERR wrong type\r\n", "-ERR wrong type");
    CHECK(":0\r\n", ":0");
    CHECK(":-42\r\n", ":-42");
    CHECK(":9223372036854775807\r\n", ":9223372036854775807");
    CHECK(":-9223372036854775808\r\n", ":-9223372036854775808");
    CHECK("$5\r\nhello\r\n", "$5:hello");
    CHECK("$0\r\n\r\n", "$0:");
    CHECK("$-1\r\n", "nil");
    CHECK("$4\r\na\0\r\n\r\n", "$4:a\\0\r\n");
    CHECK("*-1\r\n", "nil");
    CHECK("*0\r\n", "[]");
    CHECK("*3\r\n:1\r\n$3\r\nfoo\r\n*2\r\n+a\r\n$-1\r\n",
          "[:1,$3:foo,[+a,nil]]");
    return 0;
}

TEST(resp_resp3_types_at_every_split)
{
    CHECK("_\r\n", "nil");
    CHECK("#t\r\n", "#t");
    CHECK("#f\r\n", "#f");
    CHECK(",3.25\r\n", ",3.25");
    CHECK(",-1e10\r\n", ",-1e+10");
    CHECK(",inf\r\n", ",inf");
    CHECK(",-inf\r\n", ",-inf");
    CHECK("(3492890328409238509324850943850943825024385\r\n",
          "(3492890328409238509324850943850943825024385");
    CHECK("!21\r\nSYNTAX invalid syntax\r\n", "-SYNTAX invalid syntax");
    CHECK("=15\r\ntxt:Some string\r\n", "=txt:Some string");
    CHECK("%2\r\n+first\r\n:1\r\n$6\r\nsecond\r\n#f\r\n",
          "%[+first,:1,$6:second,#f]");
    CHECK("%0\r\n", "%[]");
    CHECK("~3\r\n+a\r\n+b\r\n:3\r\n", "~[+a,+b,:3]");
    CHECK(">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n",
          ">[$7:message,$2:ch,$2:hi]");
    /* Attributes are parsed and dropped, also inside aggregates. */
    CHECK("|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n:7\r\n", ":7");
    CHECK("*2\r\n|1\r\n+k\r\n+v\r\n:1\r\n:2\r\n", "[:1,:2]");
    CHECK("|0\r\n+x\r\n", "+x");
    return 0;
}

TEST(resp_double_nan)
{
    cio_redis_reply *r;
    size_t left, cuts[] = {7};
    ASSERT_EQ(1, feed_cuts(",nan\r\n+", 7, cuts, 1, &r, &left, NULL));
    ASSERT_EQ(CIO_REDIS_DOUBLE, r->type);
    ASSERT_TRUE(isnan(r->dval));
    ASSERT_STR_EQ("nan", r->str);
    ASSERT_EQ(1, left); /* the next reply's first byte stays */
    cio_redis_reply_free(r);
    return 0;
}

TEST(resp_pipelined_replies_one_at_a_time)
{
    const char in[] = "+OK\r\n:5\r\n$3\r\nabc\r\n*1\r\n_\r\n";
    cio__resp_parser p;
    cio__resp_init(&p, NULL);
    const char *want[] = {"+OK", ":5", "$3:abc", "[nil]"};
    size_t pos = 0;
    for (int i = 0; i < 4; i++) {
        cio_redis_reply *r;
        size_t used;
        ASSERT_EQ(
            1, cio__resp_parse(&p, in + pos, sizeof in - 1 - pos, &used, &r));
        ASSERT_STR_EQ(want[i], dump(r));
        cio_redis_reply_free(r);
        pos += used;
    }
    ASSERT_EQ(sizeof in - 1, pos);
    size_t used = 7;
    cio_redis_reply *r = NULL;
    ASSERT_EQ(0, cio__resp_parse(&p, in, 0, &used, &r));
    ASSERT_EQ(0, used);
    ASSERT_TRUE(r == NULL);
    return 0;
}

TEST(resp_big_bulk_arrives_in_pieces)
{
    /* A 200 KiB string fed 1000 bytes at a time grows its buffer as the
     * bytes come. */
    size_t n = 200 * 1024;
    char *in = malloc(n + 32);
    int h = sprintf(in, "$%zu\r\n", n);
    for (size_t i = 0; i < n; i++)
        in[h + i] = (char)('a' + i % 26);
    memcpy(in + h + n, "\r\n", 2);
    size_t len = (size_t)h + n + 2;
    cio__resp_parser p;
    cio__resp_init(&p, NULL);
    cio_redis_reply *r = NULL;
    size_t pos = 0;
    int rc = 0;
    while (rc == 0 && pos < len) {
        size_t k = len - pos < 1000 ? len - pos : 1000, used;
        rc = cio__resp_parse(&p, in + pos, k, &used, &r);
        pos += used;
        if (rc == 0 && used == 0)
            break;
    }
    ASSERT_EQ(1, rc);
    ASSERT_EQ(len, pos);
    ASSERT_EQ(n, r->len);
    ASSERT_TRUE(memcmp(r->str, in + h, n) == 0);
    ASSERT_EQ(0, r->str[n]);
    cio_redis_reply_free(r);
    free(in);
    return 0;
}

static int expect_bad(const char *in, size_t len, const cio_redis_limits *lim)
{
    cio_redis_reply *r;
    size_t left, cuts[] = {len};
    int rc = feed_cuts(in, len, cuts, 1, &r, &left, lim);
    if (rc != CIO_EBADRESP)
        TEST_FAIL_("\"%.*s\": expected CIO_EBADRESP, got %d", (int)len, in, rc);
    return 0;
}

#define BAD(in) ASSERT_OK(expect_bad((in), sizeof(in) - 1, NULL))

TEST(resp_malformed_input_is_ebadresp)
{
    BAD("?\r\n");
    BAD("\r\n");
    BAD("+OK\n");
    BAD("+O\rK\r\n");
    BAD(":\r\n");
    BAD(":12a\r\n");
    BAD(":-\r\n");
    BAD(":99999999999999999999\r\n");
    BAD(":9223372036854775808\r\n");
    BAD("$-2\r\n");
    BAD("$abc\r\n");
    BAD("$3\r\nabcX\n");
    BAD("$3\r\nabc\rX");
    BAD("$?\r\n");
    BAD("*?\r\n");
    BAD("*-2\r\n");
    BAD("%-1\r\n");
    BAD("~-1\r\n");
    BAD("!-1\r\n");
    BAD("=3\r\ntxt\r\n");
    BAD("=5\r\ntxtxy\r\n");
    BAD("=5\r\nt\0x:y\r\n");
    BAD("_x\r\n");
    BAD("#x\r\n");
    BAD("#tt\r\n");
    BAD(",\r\n");
    BAD(",1.5x\r\n");
    BAD(",0x10\r\n");
    BAD("(\r\n");
    BAD("(12a\r\n");
    BAD("*2\r\n:1\r\nX\r\n");
    return 0;
}

TEST(resp_limits)
{
    cio_redis_limits lim = {
        .max_bulk = 10, .max_elements = 4, .max_depth = 3, .max_line = 16};
    cio_redis_reply *r;
    size_t left, cuts[1];
#define OK_LIM(in)                                                             \
    do {                                                                       \
        cuts[0] = sizeof(in) - 1;                                              \
        ASSERT_EQ(1,                                                           \
                  feed_cuts((in), sizeof(in) - 1, cuts, 1, &r, &left, &lim));  \
        cio_redis_reply_free(r);                                               \
    } while (0)
    OK_LIM("$10\r\n0123456789\r\n");
    ASSERT_OK(expect_bad("$11\r\n", 5, &lim));
    OK_LIM("*4\r\n:1\r\n:2\r\n:3\r\n:4\r\n");
    ASSERT_OK(expect_bad("*5\r\n", 4, &lim));
    OK_LIM("%2\r\n:1\r\n:2\r\n:3\r\n:4\r\n");
    ASSERT_OK(expect_bad("%3\r\n", 4, &lim));
    OK_LIM("*1\r\n*1\r\n*1\r\n:1\r\n");
    ASSERT_OK(expect_bad("*1\r\n*1\r\n*1\r\n*1\r\n", 16, &lim));
    /* An empty aggregate is an aggregate: no deeper than the limit either
     * (a nil array is not one). */
    OK_LIM("*1\r\n*1\r\n*0\r\n");
    ASSERT_OK(expect_bad("*1\r\n*1\r\n*1\r\n*0\r\n", 16, &lim));
    ASSERT_OK(expect_bad("*1\r\n*1\r\n*1\r\n%0\r\n", 16, &lim));
    OK_LIM("*1\r\n*1\r\n*1\r\n*-1\r\n");
    /* Attributes count towards the depth too. */
    ASSERT_OK(expect_bad("*1\r\n*1\r\n*1\r\n|1\r\n", 16, &lim));
    OK_LIM("+0123456789abcdef\r\n");
    ASSERT_OK(expect_bad("+0123456789abcdefXYZW", 21, &lim));
    /* A line without its end is refused once longer than the limit, not
     * buffered for ever. */
    char longline[4096];
    memset(longline, 'x', sizeof longline);
    longline[0] = '+';
    ASSERT_OK(expect_bad(longline, sizeof longline, &lim));
    /* Huge counts are refused, whatever the limit says. */
    ASSERT_OK(expect_bad("*99999999999999999999\r\n", 23, NULL));
#undef OK_LIM
    return 0;
}

TEST(resp_declared_sizes_allocate_nothing_up_front)
{
    /* The defaults allow 512 MiB strings and 16 Mi elements; a header that
     * declares them must not allocate that much before the data comes
     * (the test runner's allocator would fail such a call; here the live
     * count stays small and the reset frees all). */
    cio__resp_parser p;
    cio__resp_init(&p, NULL);
    long before = cio__alloc_live();
    const char *in = "*16000000\r\n$536870912\r\nabc";
    size_t used;
    cio_redis_reply *r = NULL;
    ASSERT_EQ(0, cio__resp_parse(&p, in, strlen(in), &used, &r));
    ASSERT_EQ(strlen(in), used);
    ASSERT_TRUE(cio__resp_busy(&p));
    ASSERT_TRUE(cio__alloc_live() - before <= 4);
    cio__resp_reset(&p);
    ASSERT_EQ(before, cio__alloc_live());
    ASSERT_TRUE(!cio__resp_busy(&p));
    return 0;
}

TEST(resp_allocation_failure_is_enomem_without_leak)
{
    const char in[] = "*3\r\n$3\r\nabc\r\n%1\r\n+k\r\n~1\r\n:1\r\n=7\r\ntxt:abc"
                      "\r\n";
    long before = cio__alloc_live();
    int saw_enomem = 0;
    for (long nth = 1; nth < 40; nth++) {
        cio__resp_parser p;
        cio__resp_init(&p, NULL);
        cio__alloc_fail_at(nth);
        cio_redis_reply *r = NULL;
        size_t used;
        int rc = cio__resp_parse(&p, in, sizeof in - 1, &used, &r);
        cio__alloc_fail_at(0);
        if (rc == -ENOMEM) {
            saw_enomem = 1;
            cio__resp_reset(&p);
        } else {
            ASSERT_EQ(1, rc);
            ASSERT_STR_EQ("[$3:abc,%[+k,~[:1]],=txt:abc]", dump(r));
            cio_redis_reply_free(r);
        }
        ASSERT_EQ(before, cio__alloc_live());
    }
    ASSERT_TRUE(saw_enomem);
    return 0;
}

TEST(resp_encode_commands)
{
    char *buf = NULL;
    size_t len = 0, cap = 0;
    const char *argv[] = {"SET", "k\0y", ""};
    size_t lens[] = {3, 3, 0};
    ASSERT_OK(cio__resp_encode(&buf, &len, &cap, 3, argv, lens));
    const char want[] = "*3\r\n$3\r\nSET\r\n$3\r\nk\0y\r\n$0\r\n\r\n";
    ASSERT_EQ(sizeof want - 1, len);
    ASSERT_TRUE(memcmp(buf, want, len) == 0);
    const char *argv2[] = {"PING"};
    ASSERT_OK(cio__resp_encode(&buf, &len, &cap, 1, argv2, NULL));
    ASSERT_TRUE(memcmp(buf + sizeof want - 1, "*1\r\n$4\r\nPING\r\n", 14) == 0);
    /* What the encoder writes, the parser reads back. */
    cio__resp_parser p;
    cio__resp_init(&p, NULL);
    cio_redis_reply *r;
    size_t used;
    ASSERT_EQ(1, cio__resp_parse(&p, buf, len, &used, &r));
    ASSERT_STR_EQ("[$3:SET,$3:k\\0y,$0:]", dump(r));
    cio_redis_reply_free(r);
    cio__free(buf);
    return 0;
}

TEST(resp_type_names)
{
    ASSERT_STR_EQ("string", cio_redis_type_name(CIO_REDIS_STRING));
    ASSERT_STR_EQ("verb", cio_redis_type_name(CIO_REDIS_VERB));
    ASSERT_STR_EQ("unknown", cio_redis_type_name(99));
    ASSERT_STR_EQ("unknown", cio_redis_type_name(-1));
    cio_redis_reply_free(NULL);
    return 0;
}
