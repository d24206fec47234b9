#!/usr/bin/env bash
# Storage throughput: a stream of SIZE_MB (default 2048) uploaded and
# downloaded through gosst's s3 (aws-sdk-go-v2) and minio (minio-go)
# backends — multipart, bounded memory, unknown size — against the same
# client library's plain single PUT and GET of the same bytes, in one run,
# against a real versitygw over TLS on 127.0.0.1.
#
#   test/bench/storage.sh [SIZE_MB]
#   PART_SIZE=16MiB CONCURRENCY=4 test/bench/storage.sh 2048
#   DATA=xfs test/bench/storage.sh         server data on a reflink XFS (default as root with xfsprogs)
#   DATA=tmpfs test/bench/storage.sh       server data in /dev/shm (default otherwise)
#   DATA=disk test/bench/storage.sh        server data on this machine's disk
#   ROUNDS=5 test/bench/storage.sh         rounds per phase (default 3; medians)
#
# The issue's question is how our clients compare with a plain PUT/GET, so
# the server must not charge multipart uploads for work a real object store
# does not do. versitygw's posix backend concatenates the parts on
# CompleteMultipartUpload — a copy of the whole object, on the same two
# cores (+3.5 s of server CPU per 2 GiB) — unless its filesystem has
# reflinks: then copy_file_range clones the parts, as S3 does not copy
# either. DATA=xfs (the default when run as root with mkfs.xfs; apt-get
# install xfsprogs) loop-mounts an XFS image kept in /dev/shm and drops the
# page cache before each phase (a completed multipart object shares its
# parts' blocks, not their cached pages, so GETs compare cold with cold).
# DATA=tmpfs keeps the copy and shows its cost.
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
if [ -z "${DATA:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v mkfs.xfs >/dev/null; then DATA=xfs; else
    DATA=tmpfs
    echo "no root or no mkfs.xfs (make deps installs xfsprogs): the server's multipart copy is measured too" >&2
  fi
  echo "server data: DATA=$DATA (see the header of $0)" >&2
fi
if [ "$DATA" = xfs ]; then
  command -v mkfs.xfs >/dev/null || { echo "DATA=xfs needs mkfs.xfs (apt-get install xfsprogs)" >&2; exit 1; }
  [ "$(id -u)" = 0 ] || { echo "DATA=xfs needs root (loop mount)" >&2; exit 1; }
  img=$(mktemp /dev/shm/gosst-bench-xfs.XXXXXX)
  mnt=$(mktemp -d /tmp/gosst-bench-xfs.XXXXXX)
  trap 'umount "$mnt" 2>/dev/null; rmdir "$mnt"; rm -f "$img"' EXIT
  truncate -s $(( (SIZE_MB * 5 / 2 + 1024) << 20 )) "$img"
  mkfs.xfs -q -m reflink=1 "$img"
  mount -o loop "$img" "$mnt"
  export GOSST_BENCH_TMPDIR=$mnt
  # A completed multipart object shares its parts' blocks, not their cached
  # pages: every phase starts with a dropped page cache, so GETs compare
  # cold reads with cold reads.
  export GOSST_BENCH_DROP_CACHES=1
elif [ "$DATA" = tmpfs ] && [ -d /dev/shm ] &&
   [ "$(df -Pk /dev/shm | awk 'NR==2 {print $4}')" -gt $((SIZE_MB * 1024 * 5 / 2)) ]; then
  export GOSST_BENCH_TMPDIR=/dev/shm
fi
go test -count=1 -run '^$' -bench '^BenchmarkThroughput$' -benchtime 1x -timeout 60m ./storage/ |
  grep -vE '^(goos|goarch|pkg|cpu|PASS|ok )'
