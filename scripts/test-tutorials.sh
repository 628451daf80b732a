#!/usr/bin/env bash
# Runs the tutorials in docs/tutorials against a real platform, so a broken step fails
# `make test` (scripts/test.sh calls this script when it is executable).
#
#   scripts/test-tutorials.sh            every tutorial, in order
#   scripts/test-tutorials.sh 01 02      only the tutorials whose file names start with these
#
# What it does:
#   1. copies the repository (tracked and untracked-but-not-ignored files) into a temp dir, so
#      tutorials that change the tree (new-service.sh, new files) never touch yours;
#   2. starts tools/devstack there on free, non-default ports (a random --port-offset in
#      53000..56400, different from scripts/e2e.sh's range; another one if a port turns out
#      taken) with its own data dir and its own dev credentials;
#   3. for each tutorial, extracts the runnable blocks (the convention is documented at the top
#      of docs/tutorials/README.md: fenced ```sh blocks and <!-- test ... --> comments, in
#      order) into one bash script run with `set -Eeuo pipefail`, with the platform's addresses
#      in BROOK_GATEWAY, BROOK_COMMANDS, BROOK_LASTREAD, BROOK_KAFKA_BROKERS, BROOK_CONSUL_ADDR,
#      BROOK_CONSUL_DNS_PORT, BROOK_PORT_OFFSET, BROOK_AUTH_JWT_SECRET and BROOK_ADMIN_TOKEN;
#   4. checks that scripts/new-service.sh refuses bad and existing names (generating, building
#      and testing a service is tutorial 03's job);
#   5. stops devstack with SIGTERM and kills anything a tutorial left running.
#
# Prints PASS/FAIL per tutorial (a failure names the tutorial, its line and the command, then
# the end of that tutorial's output) and ends with "N passed, M failed"; exit 1 on any failure.
#
# Environment: TUTORIALS_READY_TIMEOUT (seconds for devstack's ready line, default 420),
# TUTORIALS_TIMEOUT (seconds per tutorial, default 900), TUTORIALS_PORT_OFFSET (default: a free
# random offset), TUTORIALS_KEEP=1 keeps the temp dir (copy, logs, data) for inspection.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

READY_TIMEOUT="${TUTORIALS_READY_TIMEOUT:-420}"
TUT_TIMEOUT="${TUTORIALS_TIMEOUT:-900}"
CONSUL_BIN="${BROOK_CONSUL_BIN:-$ROOT/bin/consul}"

passed=0
failed=0
pass() { echo "PASS $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }
say() { echo "tutorials: $*"; }
summary() { echo "$passed passed, $failed failed"; }

if [[ ! -x "$CONSUL_BIN" ]]; then
	echo "tutorials: no Consul binary at $CONSUL_BIN; run 'make consul' (or make test) first" >&2
	exit 1
fi
command -v curl >/dev/null || { echo "tutorials: curl is needed" >&2; exit 1; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/brook-tutorials.XXXXXX")"
REPO="$WORK/repo"
LOG="$WORK/devstack.log"
source "$ROOT/scripts/devstack-process.sh" # DEVSTACK_PID, stop_devstack
TUT_PGID=""

# kill_group PGID: whatever a tutorial left running (background services), TERM then KILL.
kill_group() {
	local g=$1
	kill -TERM -- "-$g" 2>/dev/null || return 0
	for _ in $(seq 100); do
		kill -0 -- "-$g" 2>/dev/null || return 0
		sleep 0.1
	done
	kill -KILL -- "-$g" 2>/dev/null || true
}

cleanup() {
	local rc=$?
	[[ -n "$TUT_PGID" ]] && kill_group "$TUT_PGID"
	stop_devstack
	if [[ "${TUTORIALS_KEEP:-0}" == 1 || $rc -ne 0 || $failed -ne 0 ]]; then
		say "kept $WORK (devstack log: $LOG)"
	else
		# go test/build may leave read-only module cache copies; make everything removable.
		chmod -R u+w "$WORK" 2>/dev/null || true
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- 1. a private copy of the repository -------------------------------------------------
say "copying the repository into $REPO"
mkdir -p "$REPO/bin"
if git -C "$ROOT" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
	# tracked + untracked-but-not-ignored files, as they are in the working tree
	git -C "$ROOT" ls-files -z --cached --others --exclude-standard |
		(cd "$ROOT" && tar --null -T - --ignore-failed-read -cf - 2>/dev/null) |
		tar -xf - -C "$REPO"
	# the copy is a git repository too (new-service.sh and some tutorials use git)
	git -C "$REPO" init -q && git -C "$REPO" add -A >/dev/null 2>&1 &&
		git -C "$REPO" -c user.name=tutorials -c user.email=tutorials@localhost commit -qm copy >/dev/null 2>&1 || true
else
	tar --exclude=./bin --exclude=./.devstack --exclude=./.git -cf - . | tar -xf - -C "$REPO"
fi
ln -s "$CONSUL_BIN" "$REPO/bin/consul"

# ---- 2. new-service.sh refuses what it must refuse (no platform needed) -----------------
# expect_refusal DESCRIPTION PATTERN ARGS...: new-service.sh exits non-zero, says PATTERN,
# and creates nothing.
expect_refusal() {
	local desc=$1 pattern=$2 out rc=0
	shift 2
	local before
	before="$(ls "$REPO/services")"
	out="$(cd "$REPO" && bash scripts/new-service.sh "$@" 2>&1)" || rc=$?
	if ((rc == 0)); then
		fail "new-service.sh: $desc: exit 0, want a refusal: $out"
	elif ! grep -qi -- "$pattern" <<<"$out"; then
		fail "new-service.sh: $desc: message does not say \"$pattern\": $out"
	elif [[ "$(ls "$REPO/services")" != "$before" ]]; then
		fail "new-service.sh: $desc: refused but changed services/"
	else
		pass "new-service.sh: $desc ($(head -n1 <<<"$out"))"
	fi
}
if [[ -f "$REPO/scripts/new-service.sh" ]]; then
	expect_refusal "refuses an existing service" "already exists" bookshelf-lastread
	expect_refusal "refuses an invalid name" "invalid" Bad_Name
	expect_refusal "refuses a name that is too short" "invalid" x
	expect_refusal "refuses no name" "usage"
	expect_refusal "refuses a port in use by another service" "already used" bookshelf-ports --http-port 8002
fi

# ---- 3. devstack on free, non-default ports ------------------------------------------------
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
# Every default port the tutorials use, moved by one offset (8003/9003: tutorial 03's service,
# 8012/9012: tutorial 05's second lastread instance).
DEFAULT_PORTS="8001 8002 8003 8012 8080 8090 9001 9002 9003 9012 9092 8500 8600"
TUTORIALS_PORT_OFFSET="${TUTORIALS_PORT_OFFSET:-}"
# Offsets 53000..56400 put every port in 61001..65535: above Linux's ephemeral range (32768..60999),
# so no outgoing connection holds one by chance, and apart from scripts/e2e.sh's offsets.
pick_offset() {
	local off p busy
	for _ in $(seq 50); do
		off=$(((RANDOM % 35 + 530) * 100))
		busy=0
		for p in $DEFAULT_PORTS; do
			if port_busy $((p + off)); then busy=1 && break; fi
		done
		if ((!busy)); then echo "$off" && return 0; fi
	done
	return 1
}
OFFSET="${TUTORIALS_PORT_OFFSET:-$(pick_offset)}" || { echo "tutorials: found no free port offset" >&2; exit 1; }

# Credentials unlike the dev defaults: a tutorial that hard-codes them fails here.
SECRET="tutorials-secret-$RANDOM$RANDOM"
ADMIN="tutorials-admin-$RANDOM$RANDOM"

# Tutorial 07 follows one request id into the view's per-event DONE log line, which the view
# logs at info only with this setting (devstack passes its environment to the services).
export BROOK_VIEW_EVENT_LOG_LEVEL=info

say "building devstack"
(cd "$REPO" && go build -o bin/devstack ./tools/devstack)
# start_devstack: starts it and waits for the ready line; 0 = ready, 1 = failed, 2 = a port
# was taken after all (worth another offset).
start_devstack() {
	say "starting devstack (port offset $OFFSET, log $LOG)"
	rm -rf "$WORK/data"
	(cd "$REPO" && BROOK_AUTH_JWT_SECRET="$SECRET" BROOK_ADMIN_TOKEN="$ADMIN" BROOK_CONSUL_BIN="$CONSUL_BIN" \
		exec bin/devstack up --port-offset "$OFFSET" --data-dir "$WORK/data" --grace 10s) >"$LOG" 2>&1 &
	DEVSTACK_PID=$!
	local deadline=$((SECONDS + READY_TIMEOUT))
	until grep -q '^ready ' "$LOG"; do
		if ! kill -0 "$DEVSTACK_PID" 2>/dev/null || ((SECONDS >= deadline)); then
			stop_devstack
			grep -q 'address already in use' "$LOG" && return 2
			return 1
		fi
		sleep 0.5
	done
}
for attempt in 1 2 3; do
	rc=0
	start_devstack || rc=$?
	((rc == 2 && attempt < 3 && ${#TUTORIALS_PORT_OFFSET} == 0)) || break
	say "a port was taken; trying another offset"
	OFFSET="$(pick_offset)" || break
done
if ((rc != 0)); then
	fail "devstack up: no ready line (exited, or not within ${READY_TIMEOUT}s)"
	echo "---- last 40 lines of $LOG ----"
	tail -n 40 "$LOG" || true
	summary
	exit 1
fi
say "$(grep -m1 '^ready ' "$LOG")"

# ---- 4. the tutorials ----------------------------------------------------------------------
# extract FILE: the runnable blocks of a tutorial as one bash script. Each block is preceded
# by a line recording where it starts in the Markdown, so the ERR trap and the xtrace prefix
# can name the Markdown line of a failing command.
extract() {
	awk -v file="$(basename "$1")" '
		BEGIN { mode = "" }
		mode == "" && /^```sh[[:space:]]*$/       { mode = "fence"; print "__md=" NR + 1 "; __gen=$((LINENO + 1))"; next }
		mode == "" && /^<!--[[:space:]]*test[[:space:]]*$/ { mode = "comment"; print "__md=" NR + 1 "; __gen=$((LINENO + 1))"; next }
		mode == "fence"   && /^```[[:space:]]*$/ { mode = ""; next }
		mode == "comment" && /^-->[[:space:]]*$/ { mode = ""; next }
		mode != "" { print }
		END { if (mode != "") { print "echo \"" file ": unterminated block\" >&2; exit 2" } }
	' "$1"
}

# A tutorial script's header: strict mode, a trace with Markdown line numbers, and an ERR trap
# writing "line N (exit C): command" to fd 3 (the first such line is the deepest failure).
header() {
	cat <<'EOF'
set -Eeuo pipefail
__md=0 __gen=0
PS4='+ ${__tut}:$((__md + LINENO - __gen)): '
trap '__rc=$?; { set +x; } 2>/dev/null; echo "line $((__md + LINENO - __gen)) (exit $__rc): $BASH_COMMAND" >&3' ERR
set -x
EOF
}

export BROOK_GATEWAY="http://localhost:$((8080 + OFFSET))"
export BROOK_COMMANDS="http://localhost:$((8001 + OFFSET))"
export BROOK_LASTREAD="http://localhost:$((8002 + OFFSET))"
export BROOK_KAFKA_BROKERS="localhost:$((9092 + OFFSET))"
export BROOK_CONSUL_ADDR="localhost:$((8500 + OFFSET))"
export BROOK_CONSUL_DNS_PORT="$((8600 + OFFSET))"
export BROOK_PORT_OFFSET="$OFFSET"
export BROOK_AUTH_JWT_SECRET="$SECRET"
export BROOK_ADMIN_TOKEN="$ADMIN"
export BROOK_DEVSTACK_LOG="$LOG" # tutorials that read the services' log lines (07) look here

selected() { # FILE: chosen by the command-line prefixes (all when none)
	local base p
	base="$(basename "$1")"
	((${#ARGS[@]} == 0)) && return 0
	for p in "${ARGS[@]}"; do [[ "$base" == "$p"* ]] && return 0; done
	return 1
}
ARGS=("$@")

# The README's walkthrough uses the default ports literally (it is the first thing a user
# reads); point it at the test's platform. Tutorials use the variables themselves.
readme_rewrite() {
	sed -e "s|http://localhost:8080|$BROOK_GATEWAY|g" \
		-e "s|http://localhost:8500|http://$BROOK_CONSUL_ADDR|g" \
		-e "s|http://localhost:8001|$BROOK_COMMANDS|g" \
		-e "s|http://localhost:8002|$BROOK_LASTREAD|g" \
		-e "s|BROOK_AUTH_JWT_SECRET=brook-dev-secret|BROOK_AUTH_JWT_SECRET=$SECRET|g"
}

shopt -s nullglob
for md in "$REPO"/README.md "$REPO"/docs/tutorials/[0-9][0-9]-*.md; do
	selected "$md" || continue
	name="$(basename "$md")"
	script="$WORK/${name%.md}.sh"
	out="$WORK/${name%.md}.log"
	errs="$WORK/${name%.md}.err"
	{
		echo "__tut=$name"
		header
		if [[ "$name" == README.md ]]; then extract "$md" | readme_rewrite; else extract "$md"; fi
	} >"$script"
	if ! grep -q '^__md=' "$script"; then
		fail "$name: no runnable blocks (\`\`\`sh or <!-- test -->)"
		continue
	fi
	say "running $name ($(grep -c '^__md=' "$script") blocks)"
	start=$SECONDS
	# timeout puts the tutorial in its own process group and, on expiry, signals all of it.
	(cd "$REPO" && exec timeout --kill-after=10 "$TUT_TIMEOUT" bash "$script") >"$out" 2>&1 3>"$errs" </dev/null &
	TUT_PGID=$!
	rc=0
	wait "$TUT_PGID" || rc=$?
	kill_group "$TUT_PGID" # background processes the tutorial forgot to stop
	TUT_PGID=""
	took=$((SECONDS - start))
	if ((rc == 0)); then
		pass "$name (${took}s)"
		continue
	fi
	where="$(head -n1 "$errs" 2>/dev/null || true)"
	((rc == 124)) && where="timed out after ${TUT_TIMEOUT}s; ${where:-no failing command recorded}"
	fail "$name: ${where:-exit $rc}"
	echo "---- last 30 lines of $out ----"
	tail -n 30 "$out" | sed 's/^/    /'
	echo "----"
done

if ! kill -0 "$DEVSTACK_PID" 2>/dev/null; then
	fail "devstack: exited while the tutorials ran"
	tail -n 20 "$LOG" || true
fi
summary
((failed == 0))
