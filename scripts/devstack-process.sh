#!/usr/bin/env bash
# Sourced by scripts that run bin/devstack in the background (e2e.sh, test-tutorials.sh).
# They set DEVSTACK_PID when they start it.
DEVSTACK_PID=""

# stop_devstack: SIGTERM, then wait up to 60s for a clean stop, then SIGKILL.
stop_devstack() {
	[[ -n "$DEVSTACK_PID" ]] || return 0
	if kill -0 "$DEVSTACK_PID" 2>/dev/null; then
		kill -TERM "$DEVSTACK_PID" 2>/dev/null || true
		for _ in $(seq 600); do
			kill -0 "$DEVSTACK_PID" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$DEVSTACK_PID" 2>/dev/null; then
			echo "devstack did not stop within 60s of SIGTERM; killing it"
			kill -KILL "$DEVSTACK_PID" 2>/dev/null || true
		fi
	fi
	wait "$DEVSTACK_PID" 2>/dev/null || true
	DEVSTACK_PID=""
}
