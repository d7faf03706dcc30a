#!/usr/bin/env bash
# Runs the side-by-side benchmarks of kubelease and client-go's leader
# election (make bench) and rewrites BENCHMARKS.md, docs/latency.png and
# bench/results.json. About 20–25 minutes on 2 cores; the first run on a
# machine also builds kube-apiserver (about 10 minutes, cached under
# ~/.cache/kubelease-e2e/). Extra arguments go to the harness, e.g.
#   bash bench/run.sh -quick            # a small run to check the harness
#   bash bench/run.sh -backends fake    # without the real kube-apiserver
#   bash bench/run.sh -phases shards -update   # only the shard sets, keeping
#                                       # the other results in results.json
#   bash bench/run.sh -phases rollout -backends real -update   # only the
#                                       # rolling updates (about 4 minutes)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(dirname "$here")"
bin="$(mktemp -d)/kubelease-bench"
trap 'rm -rf "$(dirname "$bin")"' EXIT
cd "$here"
go build -o "$bin" ./cmd/bench
mkdir -p "$root/docs"
"$bin" -out "$root/BENCHMARKS.md" -chart "$root/docs/latency.png" -json "$here/results.json" \
	-command "${BENCH_COMMAND:-make bench}" "$@"
