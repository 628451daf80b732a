#!/usr/bin/env bash
# `make bench`: every benchmark in the workspace. Each one measures its own baseline
# (raw client or naive variant) in the same run and reports the ratio as a metric.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$ROOT/bin:$PATH"
export BROOK_CONSUL_BIN="$ROOT/bin/consul"
source scripts/modules.sh
for m in $MODULES; do
	echo "==> go test -bench ($m)"
	(cd "$m" && go test -run '^$' -bench . -benchtime "${BENCHTIME:-2s}" ./...)
done
if [[ -x scripts/load.sh ]]; then
	echo "==> scripts/load.sh (whole platform)"
	bash scripts/load.sh
fi
