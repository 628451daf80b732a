# Brook: one entry point for everything. Every target installs what it needs.
SHELL := /usr/bin/env bash
GO    ?= go


.PHONY: run test e2e bench gen lint clean consul

## run: the whole platform on this machine (embedded Kafka, Consul dev agent, all services)
##      flags go in ARGS, e.g. make run ARGS="--only kafka,consul" or ARGS="--port-offset 100"
## (devstack runs as bin/devstack rather than under `go run`, so Ctrl-C and
##  SIGTERM reach it directly; it stops services, Consul, then Kafka.)
run: consul
	$(GO) build -o bin/devstack ./tools/devstack
	bin/devstack up $(ARGS)

## consul: build bin/consul once from the Go module proxy
consul:
	@bash scripts/install-consul.sh

## test: unit + integration tests of every module, then e2e, failure and tutorial tests
test: consul
	@bash scripts/test.sh

## e2e: end-to-end tests only (scripts/e2e.sh)
e2e: consul
	@bash scripts/e2e.sh

## bench: benchmarks with ratios against raw clients / baselines measured in the same run
bench: consul
	@bash scripts/bench.sh

## gen: regenerate api/ from the .proto files (buf and plugins run via go run, pinned)
gen:
	@bash scripts/gen.sh

## lint: gofmt, go vet, staticcheck, and a check that generated code is fresh
lint:
	@bash scripts/lint.sh

## clean: remove build output and local data (keeps bin/consul unless CLEAN_CONSUL=1)
clean:
	rm -rf .devstack dist
	@if [ "$${CLEAN_CONSUL:-0}" = 1 ]; then rm -rf bin; else find bin -mindepth 1 ! -name consul -delete 2>/dev/null || true; fi
