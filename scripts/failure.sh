#!/usr/bin/env bash
# Failure tests of the whole platform (part of `make test`): tests/platform runs the Kafka
# broker (devstack up --only kafka), a Consul dev agent and every service as real processes,
# puts a load of authenticated writes through the gateway, kills -9 and restarts each service,
# the broker (same port and data dir) and the Consul agent during it (and restarts the agent
# cleanly once), then checks the event log, the read view and the write side, and prints the
# counts and how long each component took to recover. Bounded: each wait in the test has its
# own timeout (the test gives up after 4 minutes), and go test stops everything after
# FAILURE_TIMEOUT. Needs bin/consul (`make consul`); everything else is built from this checkout.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export BROOK_CONSUL_BIN="${BROOK_CONSUL_BIN:-$ROOT/bin/consul}"
if [[ ! -x "$BROOK_CONSUL_BIN" ]]; then
	echo "failure: no Consul binary at $BROOK_CONSUL_BIN; run 'make consul' (or make test) first" >&2
	exit 1
fi
exec go test -count=1 -v -run 'TestFailures' -timeout "${FAILURE_TIMEOUT:-10m}" ./tests/platform/...
