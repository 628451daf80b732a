#!/usr/bin/env bash
# `make lint`: gofmt, go vet and staticcheck on every module, and a check that the
# generated code in api/ matches the .proto files (fails with "run make gen").
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
STATICCHECK="honnef.co/go/tools/cmd/staticcheck@v0.8.2"
source scripts/modules.sh
MODULES="$MODULES tests/platform"

status=0
unformatted=$(gofmt -l $MODULES 2>/dev/null | grep -v '\.pb\.' || true)
if [[ -n "$unformatted" ]]; then
	echo "gofmt: these files need formatting:"; echo "$unformatted"; status=1
fi
for m in $MODULES; do
	echo "==> vet + staticcheck ($m)"
	(cd "$m" && go vet ./... && go run "$STATICCHECK" ./...) || status=1
done
echo "==> generated code is fresh"
(cd api && go test -count=1 -run 'TestGenerated' ./...) || status=1
exit $status
