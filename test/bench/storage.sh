#!/usr/bin/env bash
# Storage throughput: a stream of SIZE_MB (default 2048) uploaded and
# downloaded through gosst's s3 (aws-sdk-go-v2) and minio (minio-go)
# backends — multipart, bounded memory, unknown size — against the same
# client library's plain single PUT and GET of the same bytes, in one run,
# against a real versitygw over TLS on 127.0.0.1.
#
#   test/bench/storage.sh [SIZE_MB]
#   PART_SIZE=16MiB CONCURRENCY=4 test/bench/storage.sh 2048
#   DATA=disk test/bench/storage.sh        server data on disk instead of tmpfs
#   DATA=xfs test/bench/storage.sh         server data on a reflink XFS (root, xfsprogs)
#   ROUNDS=5 test/bench/storage.sh         rounds per phase (default 3; medians)
#
# By default the server keeps its data in /dev/shm (when it has room for
# 2.5 × the stream), so the run measures the clients and not the VM's disk:
# versitygw's posix backend writes every multipart upload twice (parts, then
# the concatenation on CompleteMultipartUpload), which a single PUT does not.
#
# DATA=xfs puts the server's data on an XFS filesystem with reflinks (a loop
# image in /dev/shm), where versitygw's CompleteMultipartUpload clones the
# parts instead of copying them — as a real object store does not copy
# either. That isolates what the issue measures: the clients.
#
# Each phase runs ROUNDS times, plain and ours alternating, and the median
# counts: on a shared 2-core VM single runs vary by ±25 %.
#
# Prints MiB/s and peak RSS per phase and the ratio ours/plain (target >= 0.9).
# Data is generated on the fly from a seeded PRNG and verified by hash on
# the way back; nothing is held in memory. versitygw is started and stopped
# (by PID) by the benchmark itself; `make tools` builds it.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
SIZE_MB=${1:-2048}
cd "$ROOT"
export GOSST_VERSITYGW=${GOSST_VERSITYGW:-$ROOT/.tools/versitygw}
[ -x "$GOSST_VERSITYGW" ] || { echo "versitygw not found at $GOSST_VERSITYGW: run make tools" >&2; exit 1; }
export GOSST_BENCH_BYTES=$((SIZE_MB << 20))
export GOSST_BENCH_PART_SIZE=${PART_SIZE:-16MiB}
export GOSST_BENCH_CONCURRENCY=${CONCURRENCY:-4}
[ -z "${CLIENTS:-}" ] || export GOSST_BENCH_CLIENTS=$CLIENTS
export GOSST_BENCH_ROUNDS=${ROUNDS:-3}
if [ "${DATA:-tmpfs}" = xfs ]; then
  command -v mkfs.xfs >/dev/null || { echo "DATA=xfs needs mkfs.xfs (apt-get install xfsprogs)" >&2; exit 1; }
  [ "$(id -u)" = 0 ] || { echo "DATA=xfs needs root (loop mount)" >&2; exit 1; }
  img=$(mktemp /dev/shm/gosst-bench-xfs.XXXXXX)
  mnt=$(mktemp -d /tmp/gosst-bench-xfs.XXXXXX)
  trap 'umount "$mnt" 2>/dev/null; rmdir "$mnt"; rm -f "$img"' EXIT
  truncate -s $(( (SIZE_MB * 5 / 2 + 1024) << 20 )) "$img"
  mkfs.xfs -q -m reflink=1 "$img"
  mount -o loop "$img" "$mnt"
  export GOSST_BENCH_TMPDIR=$mnt
elif [ "${DATA:-tmpfs}" = tmpfs ] && [ -d /dev/shm ] &&
   [ "$(df -Pk /dev/shm | awk 'NR==2 {print $4}')" -gt $((SIZE_MB * 1024 * 5 / 2)) ]; then
  export GOSST_BENCH_TMPDIR=/dev/shm
fi
go test -count=1 -run '^$' -bench '^BenchmarkThroughput$' -benchtime 1x -timeout 60m ./storage/ |
  grep -vE '^(goos|goarch|pkg|cpu|PASS|ok )'
