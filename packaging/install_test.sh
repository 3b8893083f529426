#!/usr/bin/env bash
# Install cio from a build tree into a temporary prefix, move the prefix
# (an installed tree must be relocatable), then build and run
# packaging/example/hello.c against it:
#   1. pkg-config --static, linked against libcio.a;
#   2. pkg-config, linked against libcio.so with an rpath;
#   3. CMake find_package(cio), both cio::cio_static and cio::cio_shared.
# Usage: install_test.sh BUILD_DIR SOURCE_DIR
# Environment: CC (compiler), CIO_EXTRA_FLAGS (flags the library was built
# with that its users need too, e.g. sanitizers).
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 BUILD_DIR SOURCE_DIR" >&2
    exit 2
fi
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
cc=${CC:-cc}
read -r -a extra <<< "${CIO_EXTRA_FLAGS:-}"
cflags=(-std=c11 -Wall -Wextra -Werror "${extra[@]}")

tmp=$(mktemp -d "${TMPDIR:-/tmp}/cio-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

fail() {
    echo "install_test: FAIL: $*" >&2
    exit 1
}
step() {
    echo "== $*"
}

# Whether an ELF file lists libcio.so.* among the libraries it needs.
needs_libcio() {
    readelf -d "$1" | grep -q 'NEEDED.*\[libcio\.so'
}

step "install into a staging prefix"
cmake --install "$build" --prefix "$tmp/stage" > "$tmp/install.log" ||
    { cat "$tmp/install.log" >&2; fail "cmake --install"; }
pc=$(find "$tmp/stage" -path '*/pkgconfig/cio.pc' -print -quit)
[ -n "$pc" ] || fail "no cio.pc installed under the prefix"
echo "cio.pc: ${pc#"$tmp/stage"/}"

# Our cio.pc comes first, before one installed on the system; the system's
# directories stay visible for what cio links (libcares, openssl, ...).
syspc=$(pkg-config --variable pc_path pkg-config)
export PKG_CONFIG_LIBDIR
PKG_CONFIG_LIBDIR=$(dirname "$pc"):$syspc
unset PKG_CONFIG_PATH
libdir=$(pkg-config --variable=libdir cio)
incdir=$(pkg-config --variable=includedir cio)
[ -f "$libdir/libcio.a" ] || fail "libdir $libdir has no libcio.a"
[ -f "$incdir/cio.h" ] || fail "includedir $incdir has no cio.h"
[ "$(cd "$libdir" && pwd -P)" = "$(cd "$(dirname "$pc")/.." && pwd -P)" ] ||
    fail "libdir $libdir is not the directory holding pkgconfig/cio.pc"

step "move the prefix"
mkdir "$tmp/moved"
mv "$tmp/stage" "$tmp/moved/prefix"
prefix=$tmp/moved/prefix
pc=$(find "$prefix" -path '*/pkgconfig/cio.pc' -print -quit)
PKG_CONFIG_LIBDIR=$(dirname "$pc"):$syspc
libdir=$(pkg-config --variable=libdir cio)
incdir=$(pkg-config --variable=includedir cio)
case $libdir in "$prefix"/*) ;; *) fail "libdir $libdir is outside the moved prefix" ;; esac
case $incdir in "$prefix"/*) ;; *) fail "includedir $incdir is outside the moved prefix" ;; esac
pkg-config --print-errors --exists cio
echo "pkg-config --libs --static cio: $(pkg-config --libs --static cio)"

hello=$src/packaging/example/hello.c

step "pkg-config --static, against libcio.a"
# Hide the shared library so that -lcio can only mean the archive, whose
# own dependencies (-lpthread, -luring) must come from Libs.private.
mkdir "$tmp/hidden"
mv "$libdir"/libcio.so* "$tmp/hidden/"
# shellcheck disable=SC2046 # pkg-config output is a list of flags
"$cc" "${cflags[@]}" "$hello" -o "$tmp/hello_pc_static" \
    $(pkg-config --cflags --libs --static cio)
mv "$tmp/hidden"/libcio.so* "$libdir/"
! needs_libcio "$tmp/hello_pc_static" || fail "hello_pc_static needs libcio.so"
"$tmp/hello_pc_static" || fail "hello_pc_static exited $?"

step "pkg-config, against libcio.so with an rpath"
# shellcheck disable=SC2046
"$cc" "${cflags[@]}" "$hello" -o "$tmp/hello_pc_shared" \
    $(pkg-config --cflags --libs cio) -Wl,-rpath,"$libdir"
needs_libcio "$tmp/hello_pc_shared" || fail "hello_pc_shared does not need libcio.so"
"$tmp/hello_pc_shared" || fail "hello_pc_shared exited $?"

step "CMake find_package(cio)"
unset PKG_CONFIG_LIBDIR
cmake -S "$src/packaging/example" -B "$tmp/cmake-build" \
    -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_C_COMPILER="$cc" \
    -DCMAKE_C_FLAGS="${CIO_EXTRA_FLAGS:-}" \
    -DCMAKE_EXE_LINKER_FLAGS="${CIO_EXTRA_FLAGS:-}" > "$tmp/cmake.log" ||
    { cat "$tmp/cmake.log" >&2; fail "configuring packaging/example"; }
cmake --build "$tmp/cmake-build" > "$tmp/cmake-build.log" ||
    { cat "$tmp/cmake-build.log" >&2; fail "building packaging/example"; }
! needs_libcio "$tmp/cmake-build/hello_static" ||
    fail "hello_static (cio::cio_static) needs libcio.so"
needs_libcio "$tmp/cmake-build/hello_shared" ||
    fail "hello_shared (cio::cio_shared) does not need libcio.so"
"$tmp/cmake-build/hello_static" || fail "hello_static exited $?"
"$tmp/cmake-build/hello_shared" || fail "hello_shared exited $?"

echo "install_test: OK"
