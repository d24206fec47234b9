#!/usr/bin/env bash
# PITR replay throughput: `galera-backup restore --pitr-gtid` in both
# replay modes (--replay=applier: relay logs + the parallel replication SQL
# thread, APPLIER_THREADS threads; --replay=client: mariadb-binlog | mariadb
# on a temporary mariadbd) against a hand-run `mariadb-binlog --start-position
# … files | mariadb` over the same binlogs on the same restored backup,
# same run. Replay time only (the base restore is timed separately).
#
#   test/bench/pitr.sh [BINLOG_MB]     (default 256)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
BINLOG_MB=${1:-256}
bench_init
cd "$ROOT" && make -s build >/dev/null
GB="$ROOT/bin/galera-backup"

# A standalone server with binary logging (wsrep off).
bench_mariadb_start server_id=1 log_bin=mysql-bin binlog_format=ROW max_binlog_size=64M
d=$BENCH_DIR/db
SQL() { mariadb --defaults-file="$BENCH_CNF" -N -e "$1"; }
SQL "CREATE DATABASE b; CREATE TABLE b.t (id BIGINT AUTO_INCREMENT PRIMARY KEY, k INT, c CHAR(120), KEY(k)) ENGINE=InnoDB;
     USE b; INSERT INTO b.t (k, c) SELECT seq, REPEAT('x', 120) FROM seq_1_to_10000"
STORE=$BENCH_DIR/store
"$GB" --log-level warn backup --storage "$STORE" --defaults-file "$BENCH_CNF" --force >/dev/null

# Binlog workload: transactions of 100 inserts + 100 updates until BINLOG_MB.
binlog_bytes() { SQL "SHOW BINARY LOGS" | awk '{s+=$2} END {print s}'; }
start_bytes=$(binlog_bytes)
while [ $(( $(binlog_bytes) - start_bytes )) -lt $((BINLOG_MB * 1024 * 1024)) ]; do
  for _ in $(seq 1 50); do
    echo "USE b; BEGIN; INSERT INTO b.t (k, c) SELECT FLOOR(RAND()*1e6), REPEAT('y', 120) FROM seq_1_to_100;
          SET @s = FLOOR(RAND()*10000); UPDATE b.t SET k = k + 1 WHERE id BETWEEN @s AND @s + 99; COMMIT;"
  done | mariadb --defaults-file="$BENCH_CNF"
done
SQL "FLUSH BINARY LOGS"
"$GB" --log-level warn binlog archive --storage "$STORE" --defaults-file "$BENCH_CNF" >/dev/null
LAST=$(SQL "SELECT @@gtid_binlog_pos")
BACKUP_FILE=$("$GB" --log-level error show latest --storage "$STORE" | python3 -c 'import json,sys; b=json.load(sys.stdin)["binlog"]; print(b["file"], b["position"])')
read -r BFILE BPOS <<<"$BACKUP_FILE"
# Files of the replay: from the backup's file up to the last closed one.
FILES=$(SQL "SHOW BINARY LOGS" | awk -v f="$(basename "$BFILE")" '$1>=f {print $1}' | head -n -1 | sed "s|^|$d/data/|")
REPLAY_BYTES=$(stat -c %s $FILES | awk '{s+=$1} END {print s}')
echo "binlogs to replay: $(echo "$FILES" | wc -l) files, $((REPLAY_BYTES / 1048576)) MiB, last GTID $LAST" >&2

ROUNDS=${ROUNDS:-2}
APPLIER_THREADS=${APPLIER_THREADS:-4}
ours_s=999999; cli_s=999999; raw_s=999999
# gosst: whole restore; the replay part is printed as the last duration.
gosst_replay() {
  rm -rf "$BENCH_DIR/ours"
  out=$("$GB" --log-level warn restore --pitr-gtid "$LAST" --target-dir "$BENCH_DIR/ours" --storage "$STORE" "$@")
  echo "$out" | python3 -c 'import re,sys; d=sys.stdin.read().strip().split(" in ")[-1]; m=re.match(r"([0-9.]+)(ms|s|m)", d); v=float(m.group(1)); print(v/1000 if m.group(2)=="ms" else v*60 if m.group(2)=="m" else v)'
}
for round in $(seq 1 "$ROUNDS"); do
  s=$(gosst_replay --replay applier --applier-threads "$APPLIER_THREADS")
  awk -v a="$s" -v b="$ours_s" 'BEGIN{exit !(a<b)}' && ours_s=$s
  s=$(gosst_replay --replay client)
  awk -v a="$s" -v b="$cli_s" 'BEGIN{exit !(a<b)}' && cli_s=$s
  # By hand: same backup restored, plain mariadbd, mariadb-binlog | mariadb.
  rm -rf "$BENCH_DIR/raw"
  "$GB" --log-level warn restore latest --target-dir "$BENCH_DIR/raw" --storage "$STORE" >/dev/null
  setsid mariadbd --no-defaults --datadir="$BENCH_DIR/raw" --socket="$BENCH_DIR/raw.sock" --skip-networking --skip-grant-tables \
    --user="$(id -un)" --skip-log-bin --innodb-buffer-pool-size=128M --innodb-flush-log-at-trx-commit=2 --log-error="$BENCH_DIR/raw.err" --pid-file="$BENCH_DIR/raw.pid" &
  rawpid=$!
  for _ in $(seq 1 60); do mariadb --no-defaults --socket="$BENCH_DIR/raw.sock" -e 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.5; done
  t0=$(date +%s.%N)
  # shellcheck disable=SC2086
  mariadb-binlog --no-defaults --start-position="$BPOS" $FILES | mariadb --no-defaults --socket="$BENCH_DIR/raw.sock" --binary-mode
  t1=$(date +%s.%N)
  kill "$rawpid"; wait "$rawpid" 2>/dev/null || true
  s=$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')
  awk -v a="$s" -v b="$raw_s" 'BEGIN{exit !(a<b)}' && raw_s=$s
  echo "round $round: gosst applier ${ours_s}s, gosst client ${cli_s}s, hand-run ${raw_s}s (best so far)" >&2
done
awk -v b="$REPLAY_BYTES" -v o="$ours_s" -v c="$cli_s" -v r="$raw_s" -v th="$APPLIER_THREADS" 'BEGIN {
  printf "PITR replay of %.0f MiB of ROW binlogs (%d cores)\n", b/1048576, '"$(nproc)"'
  printf "%-52s %8.1f MB/s  %7.2f s\n", "mariadb-binlog --start-position files | mariadb", b/r/1e6, r
  printf "%-52s %8.1f MB/s  %7.2f s\n", "restore --pitr-gtid --replay=client (replay part)", b/c/1e6, c
  printf "%-52s %8.1f MB/s  %7.2f s\n", "restore --pitr-gtid --replay=applier, " th " threads", b/o/1e6, o
  printf "speed-up applier/hand-run: %.2f (target >= 2.5; the last transaction is excluded by gosst)\n", r/o
}'
