#!/usr/bin/env bash
# `make test`: every module's unit and integration tests (race detector on kit and
# services), then the whole-platform scripts (e2e, failure, tutorials) when present.
# Needs bin/consul (the Makefile builds it first) and nothing else.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="$ROOT/bin:$PATH"
export BROOK_CONSUL_BIN="$ROOT/bin/consul"

source scripts/modules.sh

failed=()
suites=0
echo "==> scripts/lint.sh (gofmt, go vet, staticcheck, generated code fresh)"
suites=$((suites + 1))
bash scripts/lint.sh || failed+=("lint")

for m in $MODULES; do
	flags=(-count=1 -timeout=15m)
	if race_module "$m"; then flags+=(-race); fi
	echo "==> go test ${flags[*]} ./... ($m)"
	suites=$((suites + 1))
	if ! (cd "$m" && go test "${flags[@]}" ./...); then
		failed+=("$m")
	fi
done

for s in e2e failure test-tutorials; do
	if [[ -x "scripts/$s.sh" ]]; then
		echo "==> scripts/$s.sh"
		suites=$((suites + 1))
		bash "scripts/$s.sh" || failed+=("scripts/$s.sh")
	fi
done

# One closing line for CI: each suite is a module's tests, lint, or a platform script.
if ((${#failed[@]})); then
	echo "FAILED: ${failed[*]}"
	echo "suites: $((suites - ${#failed[@]})) passed, ${#failed[@]} failed"
	exit 1
fi
echo "suites: $suites passed, 0 failed"
