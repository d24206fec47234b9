#!/usr/bin/env bash
# PITR replay throughput: `galera-backup restore --pitr-gtid` in both
# replay modes (--replay=applier: relay logs + the parallel replication SQL
# thread; --replay=client: mariadb-binlog | mariadb on a temporary mariadbd)
# against a hand-run `mariadb-binlog --start-position … files | mariadb` over
# the same binlogs on the same restored backup, same run. Replay time only
# (the base restore and server start/stop are not timed).
#
#   test/bench/pitr.sh [BINLOG_MB]     (default 256)
#
# Environment:
#   WORKLOAD=sysbench   (default) sysbench oltp_write_only, SB_THREADS
#                       sessions over SB_TABLES tables of SB_TABLE_SIZE rows:
#                       many small concurrent write transactions, as an OLTP
#                       primary logs them. SB_OPTS adds sysbench options.
#   WORKLOAD=simple     one session, transactions of 100 inserts + 100 updates
#                       on one table (the first version of this benchmark).
#   ROUNDS=2            rounds; each runs every variant once, the order
#                       reversed every other round; medians are reported.
#   APPLIER="optimistic:4"  the --replay=applier variants, MODE:THREADS
#                       (slave_parallel_mode:slave_parallel_threads) separated
#                       by spaces, e.g. "optimistic:4 conservative:4 aggressive:8".
#   APPLIER_THREADS=N   shorthand for APPLIER="optimistic:N".
#   CLIENT=1            also time --replay=client (0: skip it).
#   KEEP=1              keep the bench directory (BENCH_DIR).
set -euo pipefail
shopt -s inherit_errexit # a failed replay inside $(…) stops the script
source "$(dirname "$0")/lib.sh"
BINLOG_MB=${1:-256}
WORKLOAD=${WORKLOAD:-sysbench}
SB_TABLES=${SB_TABLES:-8} SB_TABLE_SIZE=${SB_TABLE_SIZE:-100000} SB_THREADS=${SB_THREADS:-8} SB_OPTS=${SB_OPTS:-}
ROUNDS=${ROUNDS:-2}
APPLIER=${APPLIER:-optimistic:${APPLIER_THREADS:-4}}
CLIENT=${CLIENT:-1}
case $WORKLOAD in
  sysbench) command -v sysbench >/dev/null || { echo "missing sysbench: run 'make deps' (or WORKLOAD=simple)" >&2; exit 1; } ;;
  simple) ;;
  *) echo "WORKLOAD=$WORKLOAD: want sysbench or simple" >&2; exit 2 ;;
esac
bench_init
cd "$ROOT" && make -s build >/dev/null
GB="$ROOT/bin/galera-backup"

# A standalone server with binary logging (wsrep off).
bench_mariadb_start server_id=1 log_bin=mysql-bin binlog_format=ROW max_binlog_size=64M max_connections=200
d=$BENCH_DIR/db
SQL() { mariadb --defaults-file="$BENCH_CNF" -N -e "$1"; }
# shellcheck disable=SC2206
SB=(sysbench oltp_write_only --db-driver=mysql --mysql-socket="$d/mysqld.sock" --mysql-user=root --mysql-db=sbtest
  --tables="$SB_TABLES" --table-size="$SB_TABLE_SIZE" --threads="$SB_THREADS" $SB_OPTS)
case $WORKLOAD in
  sysbench)
    SQL "CREATE DATABASE sbtest"
    "${SB[@]}" prepare >"$BENCH_DIR/sysbench-prepare.log"
    ;;
  simple)
    SQL "CREATE DATABASE b; CREATE TABLE b.t (id BIGINT AUTO_INCREMENT PRIMARY KEY, k INT, c CHAR(120), KEY(k)) ENGINE=InnoDB;
         USE b; INSERT INTO b.t (k, c) SELECT seq, REPEAT('x', 120) FROM seq_1_to_10000"
    ;;
esac
STORE=$BENCH_DIR/store
"$GB" --log-level warn backup --storage "$STORE" --defaults-file "$BENCH_CNF" --force >/dev/null

# The binlog workload, until BINLOG_MB of binlogs are written after the backup.
binlog_bytes() { SQL "SHOW BINARY LOGS" | awk '{s+=$2} END {print s}'; }
start_bytes=$(binlog_bytes)
want=$((start_bytes + BINLOG_MB * 1024 * 1024))
gen0=$(date +%s.%N)
case $WORKLOAD in
  sysbench)
    # Runs until stopped, by its PID, once the binlogs are big enough (a
    # simple command, so $! is sysbench itself; SIGTERM, as a background
    # job of a script ignores SIGINT).
    "${SB[@]}" --time=0 --events=0 --report-interval=0 run >"$BENCH_DIR/sysbench-run.log" 2>&1 &
    sbpid=$!
    BENCH_PIDS+=("$sbpid")
    while [ "$(binlog_bytes)" -lt "$want" ]; do
      kill -0 "$sbpid" 2>/dev/null || { echo "sysbench stopped early:" >&2; tail -20 "$BENCH_DIR/sysbench-run.log" >&2; exit 1; }
      sleep 1
    done
    kill -TERM "$sbpid" 2>/dev/null || true
    wait "$sbpid" 2>/dev/null || true
    ;;
  simple)
    while [ "$(binlog_bytes)" -lt "$want" ]; do
      for _ in $(seq 1 50); do
        echo "USE b; BEGIN; INSERT INTO b.t (k, c) SELECT FLOOR(RAND()*1e6), REPEAT('y', 120) FROM seq_1_to_100;
              SET @s = FLOOR(RAND()*10000); UPDATE b.t SET k = k + 1 WHERE id BETWEEN @s AND @s + 99; COMMIT;"
      done | mariadb --defaults-file="$BENCH_CNF"
    done
    ;;
esac
gen1=$(date +%s.%N)
SQL "FLUSH BINARY LOGS"
"$GB" --log-level warn binlog archive --storage "$STORE" --defaults-file "$BENCH_CNF" >/dev/null
LAST=$(SQL "SELECT @@gtid_binlog_pos")
BACKUP_FILE=$("$GB" --log-level error show latest --storage "$STORE" | python3 -c 'import json,sys; b=json.load(sys.stdin)["binlog"]; print(b["file"], b["position"], b.get("gtid") or "-")')
read -r BFILE BPOS BGTID <<<"$BACKUP_FILE"
# Files of the replay: from the backup's file up to the last closed one.
FILES=$(SQL "SHOW BINARY LOGS" | awk -v f="$(basename "$BFILE")" '$1>=f {print $1}' | head -n -1 | sed "s|^|$d/data/|")
# Bytes replayed: the files from the backup's position on.
REPLAY_BYTES=$(stat -c %s $FILES | awk -v p="$BPOS" '{s+=$1} END {print s-p}')
# Transactions and group commits: a Gtid event with a commit id (cid=) was
# group-committed with the others of that id, which conservative parallel
# replication may apply concurrently. Counted in the 2nd and 3rd file when
# there are more than 3 (a sample: the whole 1 GiB would take a minute).
scan=(--start-position="$BPOS" $FILES) sample="all files"
if [ "$(echo "$FILES" | wc -l)" -gt 3 ]; then
  scan=($(echo "$FILES" | sed -n 2,3p)) sample="sample of 2 whole files"
fi
# shellcheck disable=SC2086
GROUPS_LINE=$(mariadb-binlog --no-defaults "${scan[@]}" | awk -v sample="$sample" '
  /^#[0-9].*GTID [0-9]+-[0-9]+-[0-9]+/ { n++; if (match($0, /cid=[0-9]+/)) { c++; id = substr($0, RSTART+4, RLENGTH-4); if (!(id in seen)) { seen[id]; g++ } } }
  END { printf "%s: %d transactions, %d of them (%.0f%%) in %d commit groups (cid), %.1f per group", sample, n, c, n ? 100*c/n : 0, g, g ? c/g : 0 }')
TX=$(awk -v a="$BGTID" -v b="$LAST" 'BEGIN { if (split(a, x, "-") == 3 && split(b, y, "-") == 3 && x[1] == y[1] && x[2] == y[2]) print y[3] - x[3]; else print "?" }')
# For experiments on a kept BENCH_DIR (KEEP=1).
printf 'LAST=%q\nBPOS=%q\nFILES=%q\nSTORE=%q\n' "$LAST" "$BPOS" "$FILES" "$STORE" >"$BENCH_DIR/replay.env"
echo "workload $WORKLOAD: $(awk -v a="$gen0" -v b="$gen1" 'BEGIN{printf "%.0f", b-a}') s to write the binlogs" >&2
echo "binlogs to replay: $(echo "$FILES" | wc -l) files, $((REPLAY_BYTES / 1048576)) MiB, $TX transactions after the backup's GTID $BGTID, last $LAST; $GROUPS_LINE" >&2

declare -A TIMES
# gosst: whole restore; the replay part is printed as the last duration.
gosst_replay() {
  rm -rf "$BENCH_DIR/ours"
  out=$("$GB" --log-level warn restore --pitr-gtid "$LAST" --target-dir "$BENCH_DIR/ours" --storage "$STORE" "$@")
  # A Go duration: 812ms, 51.624s, 3m0.123s, 1h2m3.4s.
  echo "$out" | python3 -c 'import re,sys; d=sys.stdin.read().strip().split(" in ")[-1].split(" ")[0]; u={"h":3600,"m":60,"s":1,"ms":0.001,"µs":1e-6}; print(sum(float(v)*u[k] for v,k in re.findall(r"([0-9.]+)(ms|µs|h|m|s)", d)))'
}
# By hand: the same backup restored, a plain mariadbd with the applier's
# server settings, mariadb-binlog | mariadb.
hand_run() {
  rm -rf "$BENCH_DIR/raw"
  "$GB" --log-level warn restore latest --target-dir "$BENCH_DIR/raw" --storage "$STORE" >/dev/null
  setsid mariadbd --no-defaults --datadir="$BENCH_DIR/raw" --socket="$BENCH_DIR/raw.sock" --skip-networking --skip-grant-tables \
    --user="$(id -un)" --skip-log-bin --innodb-buffer-pool-size=128M --innodb-flush-log-at-trx-commit=2 --max-allowed-packet=1G \
    --log-error="$BENCH_DIR/raw.err" --pid-file="$BENCH_DIR/raw.pid" &
  local rawpid=$!
  # shellcheck disable=SC2064
  trap "kill $rawpid 2>/dev/null || true" EXIT # this runs in a \$(…) subshell
  for _ in $(seq 1 120); do mariadb --no-defaults --socket="$BENCH_DIR/raw.sock" -e 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.5; done
  local t0 t1
  t0=$(date +%s.%N)
  # shellcheck disable=SC2086
  mariadb-binlog --no-defaults --start-position="$BPOS" $FILES | mariadb --no-defaults --socket="$BENCH_DIR/raw.sock" --binary-mode
  t1=$(date +%s.%N)
  kill "$rawpid"; wait "$rawpid" 2>/dev/null || true
  awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}'
}
VARIANTS=()
for cfg in $APPLIER; do VARIANTS+=("applier:$cfg"); done
[ "$CLIENT" = 0 ] || VARIANTS+=(client)
VARIANTS+=(hand)
run_variant() {
  case $1 in
    applier:*) IFS=: read -r _ mode threads <<<"$1"; gosst_replay --replay applier --applier-mode "$mode" --applier-threads "$threads" ;;
    client) gosst_replay --replay client ;;
    hand) hand_run ;;
  esac
}
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for round in $(seq 1 "$ROUNDS"); do
  order=("${VARIANTS[@]}")
  if [ $((round % 2)) -eq 0 ]; then
    order=(); for ((i = ${#VARIANTS[@]} - 1; i >= 0; i--)); do order+=("${VARIANTS[i]}"); done
  fi
  line="round $round:"
  for v in "${order[@]}"; do
    s=$(run_variant "$v")
    TIMES[$v]="${TIMES[$v]:-} $s"
    echo "  round $round: $v ${s}s" >&2
    line="$line $v ${s}s,"
  done
  echo "${line%,} (load $(cut -d' ' -f1 /proc/loadavg))" >&2
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
hand_s=$(echo "${TIMES[hand]}" | bench_median)
printf 'PITR replay of %.0f MiB of ROW binlogs, workload %s (%d cores), median of %d rounds\n' \
  "$(awk -v b="$REPLAY_BYTES" 'BEGIN{print b/1048576}')" "$WORKLOAD" "$(nproc)" "$ROUNDS"
for v in "${VARIANTS[@]}"; do
  s=$(echo "${TIMES[$v]}" | bench_median)
  case $v in
    hand) name="mariadb-binlog --start-position files | mariadb" ;;
    client) name="restore --pitr-gtid --replay=client (replay part)" ;;
    applier:*) IFS=: read -r _ mode threads <<<"$v"; name="restore --pitr-gtid --replay=applier, $mode, $threads threads" ;;
  esac
  awk -v b="$REPLAY_BYTES" -v s="$s" -v h="$hand_s" -v n="$name" -v all="${TIMES[$v]# }" 'BEGIN {
    printf "%-62s %8.1f MB/s  %7.2f s  x%.2f  [%s]\n", n, b/s/1e6, s, h/s, all }'
done
echo "x = speed-up over the hand-run (target >= 2.5 for the applier; gosst excludes the last transaction)"
