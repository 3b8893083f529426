/* Syscall fault injection: make the Nth call of one system call fail with
 * a chosen errno (or come back short), for every N a scenario reaches,
 * and check after each run that
 * - the scenario ended with success or a documented error code (an
 *   interruption or a spurious EAGAIN must not surface at all, a short
 *   read or write must not lose or reorder a byte),
 * - no file descriptor, task or cio allocation was left behind, and
 * - the loop still serves: a clean run right after succeeds.
 * The calls are intercepted at link time (-Wl,--wrap, see
 * tests/CMakeLists.txt), so the library itself carries no test hooks.
 * On io_uring most socket I/O goes through the ring rather than these
 * calls; the sweep covers what remains there (socket setup, accept
 * fallbacks) and everything on epoll. */
#include <errno.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"
#include "test.h"
#include "echo.h"

#include "faults.h"

/* ---- the scenario: an echo server and a client ------------------------- */

/* Three lines echoed through a fresh server, under a 2 s deadline. */
static int exchange(void)
{
    static const char *const lines[] = {"ping\n", "a somewhat longer line\n",
                                        "x\n"};
    cio_scope sc;
    cio_scope_enter(&sc, cio_deadline_after(2 * CIO_SEC), 0);
    cio_addr a;
    cio_addr_ip(&a, "127.0.0.1", 0);
    cio_server *srv;
    int rc = cio_server_start(&srv, &a, serve_echo, NULL, NULL);
    if (rc < 0) {
        cio_scope_exit(&sc);
        return rc;
    }
    cio_stream *c = NULL;
    rc = cio_open_connection(&c, "127.0.0.1",
                             cio_addr_port(cio_server_addr(srv)), NULL);
    if (rc == 0)
        rc = echo_lines(c, lines, 3);
    if (c)
        cio_stream_close(c);
    cio_scope sh;
    cio_scope_enter(&sh, CIO_NEVER, CIO_SCOPE_SHIELD);
    cio_server_close(srv, 0);
    cio_scope_exit(&sh);
    int src = cio_scope_exit(&sc);
    return src < 0 && rc == -ECANCELED ? src : rc;
}

TEST_REALTIME(faults_every_call_of_an_echo_exchange)
{
    /* Calls of one clean run, for the report. */
    memset(fault.calls, 0, sizeof fault.calls);
    ASSERT_OK(exchange());
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++) {
        int points = sweep(&table[i], exchange);
        ASSERT_TRUE(points >= 0);
    }
    printf("     %ld faults injected over %ld (call, error) kinds, all "
           "survived\n", injected_total, survived_rows);
    /* Something is reached on every backend (on io_uring the socket
     * setup; on epoll every transfer too). */
    ASSERT_TRUE(injected_total > 0);
    return 0;
}
