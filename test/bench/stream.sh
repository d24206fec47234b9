#!/usr/bin/env bash
# Stream pipeline throughput: gosst's `stream encode` (zstd level 1 + end
# marker + age) against the CLI pipeline `zstd -T0 -1 | age -r KEY` over the
# same real mariabackup stream of InnoDB files, in one run.
#
#   test/bench/stream.sh [SIZE_MB]     (default 1024)
#
# Prints MB/s for each, the ratio (ours / CLI; target >= 0.8), peak RSS,
# and checks that both outputs decode to the input.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
SIZE_MB=${1:-1024}
bench_init
cd "$ROOT" && make -s build >/dev/null

bench_mariadb_start
bench_fill "$SIZE_MB"
in=$BENCH_DIR/backup.xbs
bench_xbstream "$in"
bytes=$(stat -c %s "$in")
age-keygen -o "$BENCH_DIR/key.txt" 2>/dev/null
chmod 600 "$BENCH_DIR/key.txt"
R=$(grep -o 'age1[0-9a-z]*' "$BENCH_DIR/key.txt")
cat "$in" >/dev/null # warm the page cache for both runs

run_cli() { zstd -T0 -1 -q -c "$in" | age -r "$R" >"$BENCH_DIR/cli.out"; }
export -f run_cli; export in R BENCH_DIR
CONC=${CONCURRENCY:-2}

read -r _ cli_s cli_kb < <(bench_time cli bash -c run_cli)
read -r _ ours_s ours_kb < <(bench_time gosst "$ROOT/bin/galera-backup" --log-level warn stream encode --level 1 --concurrency "$CONC" --recipient "$R" -o "$BENCH_DIR/ours.out" "$in")

# both must decode to the input
cmp <(age -d -i "$BENCH_DIR/key.txt" "$BENCH_DIR/cli.out" | zstd -d -q) "$in"
cmp <("$ROOT/bin/galera-backup" --log-level warn stream decode --identity "$BENCH_DIR/key.txt" "$BENCH_DIR/ours.out") "$in"

awk -v b="$bytes" -v cs="$cli_s" -v os="$ours_s" -v ck="$cli_kb" -v ok="$ours_kb" \
    -v cz="$(stat -c %s "$BENCH_DIR/cli.out")" -v oz="$(stat -c %s "$BENCH_DIR/ours.out")" -v conc="$CONC" 'BEGIN {
  printf "input: %.0f MiB real mariabackup xbstream (InnoDB), %d cores\n", b/1048576, '"$(nproc)"'
  printf "%-36s %8.1f MB/s  %6.2f s  peak RSS %6.1f MiB  ratio %.2f\n", "zstd -T0 -1 | age -r (CLI)", b/cs/1e6, cs, ck/1024, b/cz
  printf "%-36s %8.1f MB/s  %6.2f s  peak RSS %6.1f MiB  ratio %.2f\n", "gosst stream encode (zstd 1, x" conc ")", b/os/1e6, os, ok/1024, b/oz
  printf "throughput ratio gosst/CLI: %.2f (target >= 0.80)\n", cs/os
}'
