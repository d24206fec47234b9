# Shared helpers for the benchmark scripts. Source it; needs bash.
# Everything runs under $BENCH_DIR on loopback; only processes started
# here are stopped, by PID.

bench_init() {
  BENCH_DIR=${BENCH_DIR:-$(mktemp -d /tmp/gosst-bench-XXXXXX)}
  mkdir -p "$BENCH_DIR"
  BENCH_PIDS=()
  trap bench_cleanup EXIT
  ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  for tool in mariadbd mariadb-install-db mariabackup mariadb zstd age age-keygen /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "missing $tool: run 'make deps'" >&2; exit 1; }
  done
}

bench_cleanup() {
  for pid in "${BENCH_PIDS[@]:-}"; do
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  done
  [ -n "${KEEP:-}" ] || rm -rf "$BENCH_DIR"
}

# bench_mariadb_start [OPTION...]: a standalone mariadbd (wsrep off) on a
# private socket; each argument is one more [mysqld] line (log_bin=...).
bench_mariadb_start() {
  local d=$BENCH_DIR/db
  mkdir -p "$d/data"
  cat >"$d/my.cnf" <<CNF
[mysqld]
datadir=$d/data
socket=$d/mysqld.sock
skip-networking
log-error=$d/error.log
pid-file=$d/mysqld.pid
tmpdir=$d
$(printf '%s\n' "$@")
innodb_buffer_pool_size=256M
innodb_log_file_size=256M
innodb_flush_log_at_trx_commit=2
performance_schema=OFF
[client]
socket=$d/mysqld.sock
user=root
CNF
  if [ ! -d "$d/data/mysql" ]; then
    mariadb-install-db --defaults-file="$d/my.cnf" --user="$(id -un)" --auth-root-authentication-method=normal --skip-test-db >/dev/null
  fi
  setsid mariadbd --defaults-file="$d/my.cnf" --user="$(id -un)" &
  BENCH_PIDS+=($!)
  BENCH_CNF=$d/my.cnf
  for _ in $(seq 1 60); do
    mariadb --defaults-file="$BENCH_CNF" -e 'SELECT 1' >/dev/null 2>&1 && return 0
    sleep 1
  done
  echo "mariadbd did not start; see $d/error.log" >&2
  tail -20 "$d/error.log" >&2
  exit 1
}

# bench_fill MB: sysbench-shaped InnoDB table(s) of about MB megabytes.
bench_fill() {
  local mb=$1
  mariadb --defaults-file="$BENCH_CNF" <<SQL
CREATE DATABASE IF NOT EXISTS sbtest;
USE sbtest;
CREATE TABLE IF NOT EXISTS sbtest.sbtest1 (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  k INT NOT NULL DEFAULT 0,
  c CHAR(120) NOT NULL DEFAULT '',
  pad CHAR(60) NOT NULL DEFAULT '',
  KEY k_1 (k)) ENGINE=InnoDB;
INSERT INTO sbtest.sbtest1 (k, c, pad)
  SELECT FLOOR(RAND()*1000000),
         CONCAT_WS('-', LPAD(FLOOR(RAND()*1e11),11,'0'), LPAD(FLOOR(RAND()*1e11),11,'0'), LPAD(FLOOR(RAND()*1e11),11,'0'),
                        LPAD(FLOOR(RAND()*1e11),11,'0'), LPAD(FLOOR(RAND()*1e11),11,'0'), LPAD(FLOOR(RAND()*1e11),11,'0'),
                        LPAD(FLOOR(RAND()*1e11),11,'0'), LPAD(FLOOR(RAND()*1e11),11,'0'), LPAD(FLOOR(RAND()*1e11),11,'0'),
                        LPAD(FLOOR(RAND()*1e11),11,'0')),
         CONCAT_WS('-', LPAD(FLOOR(RAND()*1e11),11,'0'), LPAD(FLOOR(RAND()*1e11),11,'0'), LPAD(FLOOR(RAND()*1e11),11,'0'),
                        LPAD(FLOOR(RAND()*1e11),11,'0'), LPAD(FLOOR(RAND()*1e11),11,'0'))
  FROM seq_1_to_1000;
SQL
  local size=0
  while [ "$size" -lt $((mb * 1024 * 1024)) ]; do
    mariadb --defaults-file="$BENCH_CNF" -e "INSERT INTO sbtest.sbtest1 (k, c, pad) SELECT FLOOR(RAND()*1000000), REVERSE(c), pad FROM sbtest.sbtest1 LIMIT 400000"
    size=$(du -sb "$BENCH_DIR/db/data/sbtest" | cut -f1)
  done
  echo "dataset: $(du -sh "$BENCH_DIR/db/data/sbtest" | cut -f1) of InnoDB files in sbtest" >&2
}

# bench_xbstream FILE: a real mariabackup stream of the server.
bench_xbstream() {
  mkdir -p "$BENCH_DIR/mbtmp"
  mariabackup --defaults-file="$BENCH_CNF" --backup --stream=xbstream --target-dir="$BENCH_DIR/mbtmp" >"$1" 2>"$BENCH_DIR/mariabackup.log"
}

# bench_time NAME CMD...: run CMD under GNU time; prints "NAME seconds peakKB".
bench_time() {
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$BENCH_DIR/time.$name" "$@" >"$BENCH_DIR/stdout.$name"
  read -r secs kb <"$BENCH_DIR/time.$name"
  echo "$name $secs $kb"
}

# bench_s3_start BUCKET: versitygw (built by `make tools`) on a free
# loopback port; sets S3_URL and the AWS_* credentials.
# bench_median prints the median of the numbers on stdin (one per line
# or separated by spaces; blank lines ignored).
bench_median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }

bench_s3_start() {
  local gw=${GOSST_VERSITYGW:-$ROOT/.tools/versitygw}
  [ -x "$gw" ] || { echo "versitygw missing: run 'make tools'" >&2; exit 1; }
  local port; port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  mkdir -p "$BENCH_DIR/s3/$1"
  export AWS_ACCESS_KEY_ID=bench$RANDOM AWS_SECRET_ACCESS_KEY=secret$RANDOM$RANDOM AWS_REGION=us-east-1
  ROOT_ACCESS_KEY=$AWS_ACCESS_KEY_ID ROOT_SECRET_KEY=$AWS_SECRET_ACCESS_KEY \
    "$gw" --port "127.0.0.1:$port" --health /health --quiet --keep-alive posix "$BENCH_DIR/s3" >"$BENCH_DIR/versitygw.log" 2>&1 &
  BENCH_PIDS+=($!)
  for _ in $(seq 1 50); do
    curl -fsS "http://127.0.0.1:$port/health" >/dev/null 2>&1 && break
    sleep 0.1
  done
  S3_URL="s3://$1/bench?endpoint=http://127.0.0.1:$port&path-style=true&region=us-east-1"
}
