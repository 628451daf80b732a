#!/usr/bin/env bash
# Load benchmark of the whole platform (run by `make bench`): tests/platform's BenchmarkPlatform
# starts Kafka, a Consul dev agent and every service as real processes, then measures, with 8
# concurrent clients:
#   - commands/s through the gateway, and the latency from each command's 2xx to the event on
#     Kafka and to the book in /v1/last-read (p50/p99);
#   - the same commands on bookshelf-commands' own REST port (baseline without the gateway);
#   - raw Kafka produce -> consume with franz-go on the same broker (the floor).
# It prints the benchmark lines (ratios as metrics) and a table. LOAD_COMMANDS sets the number
# of commands per row (default 500). Needs bin/consul (`make consul`).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export BROOK_CONSUL_BIN="${BROOK_CONSUL_BIN:-$ROOT/bin/consul}"
if [[ ! -x "$BROOK_CONSUL_BIN" ]]; then
	echo "load: no Consul binary at $BROOK_CONSUL_BIN; run 'make consul' first" >&2
	exit 1
fi
exec go test -count=1 -run '^$' -bench 'BenchmarkPlatform' -benchtime "${LOAD_COMMANDS:-500}x" \
	-timeout "${LOAD_TIMEOUT:-10m}" ./tests/platform/
