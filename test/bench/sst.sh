#!/usr/bin/env bash
# Full SST time of the same dataset by the stock wsrep_sst_mariabackup, the
# stock rsync method and gosst, in one run (2-node cluster on loopback).
#
#   test/bench/sst.sh [--link RATE] [SIZE_MB]     (default 2048)
#   METHODS="gosst,gosst:compression=none" ROUNDS=3 test/bench/sst.sh
#
# ROUNDS (default 1) repeats every method, alternating (each round starts one
# method later), and reports medians (single SSTs on a shared 2-core VM vary
# by ±15 %). Every SST starts after a sync and once the disks are quiet.
# After each gosst SST the joiner's own receive/prepare/total times and both
# scripts' CPU are printed.
#
# JOINER_DISK=shared (default) keeps both nodes' datadirs on one disk, which
# must then carry the donor's reads and the joiner's writes at once.
# JOINER_DISK=ram gives node 2 its own ext4 on a RAM-backed loop device (as
# root), the way donor and joiner have separate disks in a real cluster.
#
# --link 1gbit|100mbit (any tc rate) puts node 2 in its own network namespace
# behind a veth pair shaped to that rate (test/cluster's network lab, as
# root): the SST, IST and Galera traffic cross it. The link adds no delay
# (the test kernels have no netem): the times are for a zero-delay link.
# --link 1gbit,100mbit times every method at each rate in turn, on one
# dataset (filling it is the slow part). With a link, each SST's bytes on
# it (both directions) are printed too.
#
# gosst:X=Y options go into [gosst] (gosst obeys encrypt=off only there),
# a stock method's into [sst]: "gosst,gosst:encrypt=off" compares the
# default (TLS 1.3) with cleartext.
# Targets: on loopback gosst <= 0.4x the stock mariabackup method's time and
# faster than rsync (issue 4); across 1gbit and 100mbit gosst <= 0.5x the
# best stock method's, and on loopback the default within 1.15x of
# encrypt=off (issue 18).
set -euo pipefail
LINK=""
while [ $# -gt 0 ]; do
  case "$1" in
    --link) [ $# -ge 2 ] || { echo "--link needs a rate (1gbit, 100mbit)" >&2; exit 2; }; LINK=$2; shift 2 ;;
    --link=*) LINK=${1#--link=}; shift ;;
    *) break ;;
  esac
done
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
command -v rsync >/dev/null || { echo "rsync missing (apt-get install rsync)" >&2; exit 1; }
command -v socat >/dev/null || { echo "socat missing (apt-get install socat)" >&2; exit 1; }
make -s build >/dev/null
go run ./test/bench/sstbench -size-mb "${1:-2048}" -bin bin -rounds "${ROUNDS:-1}" -joiner-disk "${JOINER_DISK:-shared}" -link "$LINK" \
  -methods "${METHODS:-mariabackup,rsync,gosst,gosst:compression=none}"
