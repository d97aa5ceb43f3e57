#!/usr/bin/env bash
# Runs one fuzz target the way BENCHMARKS.md ("Fuzzing (issue 22)") reports it: libFuzzer with
# coverage on the stable toolchain (`cargo fuzz run -s none`: no sanitizer, which needs
# nightly), one process, RUNS inputs, growing fuzz/corpus/TARGET; then the corpus minimised
# with `cargo fuzz cmin -s none`. A crash leaves its input under fuzz/artifacts/TARGET/ and
# ends the run with a non-zero status; put the input in fuzz/corpus/TARGET/ once fixed, so
# tests/node/fuzz_corpus.rs replays it in every `cargo test`.
# Usage: scripts/fuzz.sh TARGET [RUNS]    (RUNS default 10000000; TARGET: one of
#        p2p_frame stratum_server_line stratum_client_line jsonrpc submitblock)
# Environment: MAX_LEN (libFuzzer -max_len; default libFuzzer's own: 4096 bytes or the largest
# corpus input), CMIN=0 skips the minimising.
set -euo pipefail
TARGET=${1:?usage: scripts/fuzz.sh TARGET [RUNS]}
RUNS=${2:-10000000}
cd "$(dirname "$0")/../fuzz"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz
lscpu | grep -E '^(Model name|CPU\(s\)):' || true
mkdir -p "corpus/$TARGET"
start=$(date +%s)
# -print_final_stats: executions, exec/s and the coverage counters at the end.
cargo fuzz run -s none "$TARGET" "corpus/$TARGET" -- \
    -runs="$RUNS" ${MAX_LEN:+-max_len="$MAX_LEN"} -print_final_stats=1
echo "wall seconds: $(( $(date +%s) - start ))"
if [ "${CMIN:-1}" != 0 ]; then
    cargo fuzz cmin -s none "$TARGET" "corpus/$TARGET"
fi
echo "corpus: $(ls "corpus/$TARGET" | wc -l) files, $(du -sk "corpus/$TARGET" | cut -f1) KiB"
