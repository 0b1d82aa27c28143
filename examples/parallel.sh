#!/usr/bin/env bash
# fetchheads over several machines with GNU parallel and ssh: machine K of N runs --shard K/N.
#
#   examples/parallel.sh hosts.txt web1 web2 web3 > heads.jsonl
#
# Each machine needs fetchheads installed (pip install fetchheads) and ssh access without a
# password prompt. The list is sent to every machine on stdin; each keeps only its own shard (a
# stable hash of every target's URL, so no seed is shared), and the shards' JSON Lines are
# disjoint and together cover the whole list: they concatenate into one file as they arrive.
# Exit status (GNU parallel's): 0 when every machine's run had every target fetched, else the
# number of machines whose run did not (fetchheads exits 1 when any target failed, and that
# machine's records are all there all the same).
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 TARGETS_FILE HOST [HOST...]" >&2
  exit 2
fi
targets=$1
shift
shards=$#
# FETCHHEADS_OPTS: extra options for every shard, e.g. "-c 500 --rate 1000 --retries 2".
opts=${FETCHHEADS_OPTS:--c 500 --retries 2}

# {#} is the job number, 1..N, and so the shard; --line-buffer passes whole lines as they come.
parallel --line-buffer --jobs "$shards" --link \
  "ssh -o BatchMode=yes {1} fetchheads --json -q $opts --shard {#}/$shards -i - < '$targets'" \
  ::: "$@"
