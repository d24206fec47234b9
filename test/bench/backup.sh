#!/usr/bin/env bash
# Backup throughput and CPU: `galera-backup backup` (mariabackup → zstd →
# end marker → fsync'd local directory, or multipart upload to a local S3
# server) against the stock pipeline
# `mariabackup --stream=xbstream | zstd -T0 -1 > file && sync file`, same
# server, runs alternating, medians reported.
#
# Two sources:
#   cold: the server's files are dropped from the page cache before each
#         run (needs root; skipped otherwise), so mariabackup reads the disk;
#   warm: the files were just read, so mariabackup is fast and the
#         compression and storage side decide the time.
# CPU is user+sys of the command and all its children (mariabackup
# included, in both pipelines), from GNU time: on a shared or 2-core
# machine it is the steadier metric; wall time is reported too.
#
#   test/bench/backup.sh [SIZE_MB]     (default 2048; ROUNDS=5, S3=0 to skip S3)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
SIZE_MB=${1:-2048}
ROUNDS=${ROUNDS:-5}
S3=${S3:-1}
bench_init
cd "$ROOT" && make -s build >/dev/null

bench_mariadb_start
bench_fill "$SIZE_MB"
[ "$S3" = 1 ] && bench_s3_start galera

mkdir -p "$BENCH_DIR/mb"
run_raw() {
  set -o pipefail # bash -c does not inherit it: a failed mariabackup must fail the round
  mariabackup --defaults-file="$BENCH_CNF" --backup --stream=xbstream --target-dir="$BENCH_DIR/mb" 2>"$BENCH_DIR/raw.log" |
    zstd -T0 -1 -q >"$BENCH_DIR/raw.xbs.zst" && sync "$BENCH_DIR/raw.xbs.zst"
}
export -f run_raw; export BENCH_CNF BENCH_DIR
plain_of() { "$ROOT/bin/galera-backup" --log-level error show latest --storage "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["objects"][0]["plain_size"])'; }

# drop_cache: evict the server's files from the page cache (cold source).
drop_cache() {
  sync
  if [ "$(id -u)" = 0 ] && [ -w /proc/sys/vm/drop_caches ]; then echo 1 >/proc/sys/vm/drop_caches; return 0; fi
  return 1
}
# warm_cache: read the server's files so mariabackup finds them cached.
warm_cache() { cat "$BENCH_DIR"/db/data/sbtest/* "$BENCH_DIR"/db/data/ib* >/dev/null 2>&1 || true; }

# timed NAME CMD...: one run; appends "seconds cpu_seconds" to $BENCH_DIR/res.NAME.
timed() {
  local name=$1; shift
  /usr/bin/time -f "%e %U %S" -o "$BENCH_DIR/t.$name" "$@" >/dev/null 2>"$BENCH_DIR/err.$name" ||
    { echo "$name failed:" >&2; tail -20 "$BENCH_DIR/err.$name" >&2; exit 1; }
  awk '{printf "%s %.2f\n", $1, $2+$3}' "$BENCH_DIR/t.$name" >>"$BENCH_DIR/res.$name"
}

cases=(warm)
drop_cache && cases=(cold warm) || echo "not root: cold case skipped" >&2
for src in "${cases[@]}"; do
  for round in $(seq 1 "$ROUNDS"); do
    # Alternate the order too, so neither side always runs second.
    order=(raw dir); [ $((round % 2)) = 0 ] && order=(dir raw)
    [ "$S3" = 1 ] && order+=(s3)
    for what in "${order[@]}"; do
      if [ "$src" = cold ]; then drop_cache; else warm_cache; fi
      case $what in
        raw) timed "$src.raw" bash -c run_raw ;;
        dir) rm -rf "$BENCH_DIR/local"
             timed "$src.dir" "$ROOT/bin/galera-backup" --log-level warn backup --storage "$BENCH_DIR/local" --defaults-file "$BENCH_CNF" --force --parallel 1 ;;
        s3)  timed "$src.s3" "$ROOT/bin/galera-backup" --log-level warn backup --storage "$S3_URL" --defaults-file "$BENCH_CNF" --force --parallel 1 ;;
      esac
    done
    echo "$src round $round done" >&2
  done
done
raw_plain=$(zstd -d -q -c "$BENCH_DIR/raw.xbs.zst" | wc -c)
dir_plain=$(plain_of "$BENCH_DIR/local")

echo "backup stream: $((raw_plain / 1048576)) MiB (stock) / $((dir_plain / 1048576)) MiB (gosst) of mariabackup xbstream, $(nproc) cores, $ROUNDS alternating runs, medians"
printf "%-5s %-44s %9s %8s %9s %12s\n" source pipeline MB/s wall-s cpu-s cpu-ms/MB
for src in "${cases[@]}"; do
  for what in raw dir s3; do
    f=$BENCH_DIR/res.$src.$what; [ -f "$f" ] || continue
    s=$(cut -d' ' -f1 "$f" | bench_median); c=$(cut -d' ' -f2 "$f" | bench_median)
    b=$dir_plain; label="galera-backup backup -> local directory"
    case $what in
      raw) b=$raw_plain; label="mariabackup | zstd -T0 -1 > file && sync file" ;;
      s3) label="galera-backup backup -> local S3 (versitygw)" ;;
    esac
    printf "%-5s %-44s %9.1f %8.2f %9.2f %12.2f\n" "$src" "$label" "$(echo "$b $s" | awk '{print $1/$2/1e6}')" "$s" "$c" "$(echo "$c $b" | awk '{print $1*1e3/($2/1e6)}')"
    echo "$src $what $s $c $b" >>"$BENCH_DIR/summary"
  done
done
awk '{k=$1" "$2; s[k]=$3; c[k]=$4; b[k]=$5} END {
  split("cold warm", srcs, " ")
  for (i in srcs) { x=srcs[i]; if (!((x" raw") in s)) continue
    printf "%s: throughput gosst(dir)/stock %.2f (target >= 1.00); CPU per byte gosst(dir)/stock %.2f (target <= 1.20)\n", x,
      (b[x" dir"]/s[x" dir"])/(b[x" raw"]/s[x" raw"]), (c[x" dir"]/b[x" dir"])/(c[x" raw"]/b[x" raw"]) }
}' "$BENCH_DIR/summary"
