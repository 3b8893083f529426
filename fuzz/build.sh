#!/bin/sh
# Build the libFuzzer targets from the library sources into build-fuzz/.
# FUZZ_CFLAGS adds compiler flags (e.g. -fno-sanitize=pointer-overflow).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
CC=${CC:-clang}
out=build-fuzz
mkdir -p "$out"

# The core library's C sources except the other context-switch and
# backend variants, plus the x86_64 assembly context switch. Left out:
# the parts built on other libraries (TLS, PostgreSQL, HTTP) and the test
# runner (it has a main()); DNS builds its getaddrinfo fallback.
srcs=$(find src -name '*.c' ! -name coro_ucontext.c ! -name backend_uring.c \
    ! -name tls.c ! -name pg.c ! -path 'src/http/*' ! -path 'src/test/*' |
    sort | tr '\n' ' ')
srcs="$srcs src/core/coro_x86_64.S"

defs="-D_GNU_SOURCE"
libs="-lpthread"
if [ -f /usr/include/liburing.h ]; then
    srcs="$srcs src/core/backend_uring.c"
    defs="$defs -DCIO_HAVE_URING=1"
    libs="$libs -luring"
fi

# The RESP parser needs only itself and the allocator.
# shellcheck disable=SC2086
"$CC" -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -g -O1 -std=gnu11 -Iinclude -Isrc -D_GNU_SOURCE ${FUZZ_CFLAGS:-} \
    fuzz/fuzz_resp.c src/db/resp.c src/core/alloc.c -lm -o "$out/fuzz_resp"
echo "built $out/fuzz_resp"

# shellcheck disable=SC2086
"$CC" -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
    -g -O1 -std=gnu11 -Iinclude -Isrc $defs ${FUZZ_CFLAGS:-} \
    fuzz/fuzz_stream.c $srcs $libs -o "$out/fuzz_stream"
echo "built $out/fuzz_stream"

# The HTTP server and WebSocket targets: the core sources plus src/http
# and llhttp's C sources (built without TLS: no server context is used).
llhttp=/usr/share/llhttp
llhttp_inc=/usr/share/include/llhttp
if [ -f "$llhttp/api.c" ] && [ -f "$llhttp_inc/llhttp.h" ]; then
    hsrcs="$srcs $(find src/http -name '*.c' | sort | tr '\n' ' ')"
    hsrcs="$hsrcs $llhttp/api.c $llhttp/http.c $llhttp/llhttp.c"
    for t in http ws; do
        # shellcheck disable=SC2086
        "$CC" -fsanitize=fuzzer,address,undefined \
            -fno-sanitize-recover=undefined -g -O1 -std=gnu11 -Iinclude \
            -Isrc -I"$llhttp_inc" $defs -DCIO_HAVE_HTTP=1 \
            ${FUZZ_CFLAGS:-} fuzz/fuzz_$t.c $hsrcs $libs -lz \
            -o "$out/fuzz_$t"
        echo "built $out/fuzz_$t"
    done
else
    echo "llhttp sources not found: fuzz_http and fuzz_ws not built"
fi
