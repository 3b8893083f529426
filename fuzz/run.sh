#!/bin/sh
# Build, then fuzz each target (stream reader, RESP parser, HTTP server,
# WebSocket frames) for SECONDS (default 60). New inputs go to a scratch
# corpus under build-fuzz/; the seeds in fuzz/corpus/<target> are only read.
# Exits non-zero if a fuzzer finds a crash.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
secs=${1:-60}
sh fuzz/build.sh
work=build-fuzz/corpus-stream
mkdir -p "$work" build-fuzz/artifacts
build-fuzz/fuzz_stream -max_total_time="$secs" -print_final_stats=1 \
    -artifact_prefix=build-fuzz/artifacts/ "$work" fuzz/corpus/stream
mkdir -p build-fuzz/corpus-resp
build-fuzz/fuzz_resp -max_total_time="$secs" -print_final_stats=1 \
    -artifact_prefix=build-fuzz/artifacts/ build-fuzz/corpus-resp fuzz/corpus/resp
# The HTTP server and WebSocket targets (built when llhttp is installed).
for t in http ws; do
    [ -x "build-fuzz/fuzz_$t" ] || continue
    mkdir -p "build-fuzz/corpus-$t"
    "build-fuzz/fuzz_$t" -max_total_time="$secs" -timeout=10 \
        -print_final_stats=1 -artifact_prefix=build-fuzz/artifacts/ \
        "build-fuzz/corpus-$t" "fuzz/corpus/$t"
done
