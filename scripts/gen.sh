#!/usr/bin/env bash
# `make gen`: regenerate api/ from the .proto files under api/proto.
#
#   scripts/gen.sh            lint the protos, regenerate into api/ (replacing old output)
#   scripts/gen.sh OUTDIR     generate into OUTDIR instead (used by api/gen_test.go to
#                             check that the committed output is fresh)
#
# buf and every protoc plugin run with `go run module@version` at the versions pinned
# below and in api/buf.gen.yaml, so only Go is needed. The first run downloads and builds
# them (a few minutes); later runs use the Go build cache and work offline.
#
# Output: Go code in api/bookshelf/v1 (*.pb.go, *_grpc.pb.go, *.pb.gw.go) and one
# OpenAPI document per proto file that declares a service, flattened into api/openapi as
# <file>.swagger.json.
set -euo pipefail

BUF_VERSION=v1.75.0

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
API="$ROOT/api"
OUT="${1:-$API}"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"

# Tools build in their own module context (go run module@version); the workspace of
# the caller must not leak into them.
export GOWORK=off
# `go run module@version` looks the module up on the proxy even when it is cached (for
# deprecation notices). Ask the local module cache first so that a warm machine
# regenerates offline; anything missing falls through to the usual proxy.
GOPROXY="file://$(go env GOMODCACHE)/cache/download,$(go env GOPROXY)"
export GOPROXY
buf() { go run "github.com/bufbuild/buf/cmd/buf@${BUF_VERSION}" "$@"; }

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

cd "$API"
buf lint
buf generate --output "$tmp"

# Replace the previous output so that removed protos leave no orphans behind.
mkdir -p "$OUT/bookshelf/v1" "$OUT/openapi"
rm -f "$OUT"/bookshelf/v1/*.pb.go "$OUT"/bookshelf/v1/*.pb.gw.go "$OUT"/openapi/*.swagger.json

cp "$tmp"/bookshelf/v1/*.go "$OUT/bookshelf/v1/"

# Keep the OpenAPI documents of files that declare a service; the others (messages
# only) describe no operation.
while IFS= read -r proto; do
	rel="${proto#proto/}"
	base="$(basename "$rel" .proto)"
	cp "$tmp/openapi/${rel%.proto}.swagger.json" "$OUT/openapi/$base.swagger.json"
done < <(grep -l '^service ' $(find proto -name '*.proto' | sort))

echo "generated into $OUT"
