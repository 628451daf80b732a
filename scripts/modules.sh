#!/usr/bin/env bash
# Sourced by the other scripts: MODULES is every module in go.work (so a service made by
# scripts/new-service.sh is tested and linted without editing any list), relative to the
# repo root. tests/platform holds the whole-platform tests, run by scripts/failure.sh.
MODULES=$(go list -m -f '{{.Dir}}' | sed "s|^$ROOT/||" | grep -v '^tests/platform$' | tr '\n' ' ')
# The race detector runs on the kit and every service (the modules with concurrency we own).
race_module() { [[ "$1" == kit || "$1" == services/* ]]; }
