#!/usr/bin/env bash
# End-to-end test of the whole platform, as a user drives it (part of `make test`).
#
# Starts devstack (embedded Kafka, a Consul dev agent, all services) on free, non-default ports
# with a temporary data dir, then, through the gateway only: mints a token, adds books, marks
# one read and waits for it in /v1/last-read, checks X-Request-Id, auth and error answers,
# pushes a read event with kafkapush and waits for it in the view, deletes a book and sees 404.
# Finally stops devstack with SIGTERM and checks that none of its processes is left.
#
# Prints one PASS/FAIL line per check and ends with "N passed, M failed"; exits 1 on any
# failure. Needs bin/consul (`make consul`) and curl; installs nothing.
#
# Environment: E2E_READY_TIMEOUT (seconds to wait for devstack's ready line, default 420),
# E2E_VIEW_TIMEOUT (seconds to wait for the read view, default 30), E2E_PORT_OFFSET (default:
# a random free offset), E2E_KEEP=1 keeps the temp dir (logs, data) for inspection.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

READY_TIMEOUT="${E2E_READY_TIMEOUT:-420}"
VIEW_TIMEOUT="${E2E_VIEW_TIMEOUT:-30}"
export BROOK_AUTH_JWT_SECRET="e2e-secret-$RANDOM$RANDOM"
export BROOK_ADMIN_TOKEN="e2e-admin-$RANDOM$RANDOM"
export BROOK_CONSUL_BIN="${BROOK_CONSUL_BIN:-$ROOT/bin/consul}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/brook-e2e.XXXXXX")"
LOG="$WORK/devstack.log"
source "$ROOT/scripts/devstack-process.sh" # DEVSTACK_PID, stop_devstack
passed=0
failed=0

log() { echo "e2e: $*"; }
pass() { echo "PASS $*"; passed=$((passed + 1)); }
fail() { echo "FAIL $*"; failed=$((failed + 1)); }
# check DESCRIPTION COMMAND...: PASS when the command succeeds.
check() {
	local desc=$1
	shift
	if "$@"; then pass "$desc"; else fail "$desc"; fi
}

cleanup() {
	local rc=$?
	stop_devstack
	if [[ "${E2E_KEEP:-0}" == 1 || $rc -ne 0 ]]; then
		log "kept $WORK (devstack log: $LOG)"
	else
		rm -rf "$WORK"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

show_log_tail() {
	echo "---- last 40 lines of $LOG ----"
	tail -n 40 "$LOG" || true
	echo "----"
}

# port_busy PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Every port devstack uses is a default moved by one offset. Pick an offset where all are free
# and stay below the kernel's ephemeral range, where outgoing connections take ports at random.
DEFAULT_PORTS="8001 8002 8080 9001 9002 9092 8500 8600"
pick_offset() {
	local eph max off p busy
	eph="$(awk '{print $1}' /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)"
	max=$(((eph - 9092 - 1) / 100)) # offsets are multiples of 100, from 10000
	((max > 110)) || max=400
	for _ in $(seq 50); do
		off=$(((RANDOM % (max - 100) + 100) * 100))
		busy=0
		for p in $DEFAULT_PORTS; do
			if port_busy $((p + off)); then busy=1; break; fi
		done
		if ((!busy)); then echo "$off"; return 0; fi
	done
	return 1
}

if [[ ! -x "$BROOK_CONSUL_BIN" ]]; then
	echo "e2e: no Consul binary at $BROOK_CONSUL_BIN; run 'make consul' (or make test) first" >&2
	exit 1
fi
command -v curl >/dev/null || { echo "e2e: curl is needed" >&2; exit 1; }

OFFSET="${E2E_PORT_OFFSET:-$(pick_offset)}" || { echo "e2e: found no free port offset" >&2; exit 1; }
GW="http://127.0.0.1:$((8080 + OFFSET))"
KAFKA="127.0.0.1:$((9092 + OFFSET))"

log "building devstack and kafkapush into $WORK/bin"
go build -o "$WORK/bin/devstack" ./tools/devstack
go build -o "$WORK/bin/kafkapush" ./tools/kafkapush

: >"$LOG"
log "starting devstack (port offset $OFFSET, data $WORK/data, log $LOG)"
"$WORK/bin/devstack" up --port-offset "$OFFSET" --data-dir "$WORK/data" --grace 10s >"$LOG" 2>&1 &
DEVSTACK_PID=$!

deadline=$((SECONDS + READY_TIMEOUT))
until grep -q '^ready ' "$LOG"; do
	if ! kill -0 "$DEVSTACK_PID" 2>/dev/null; then
		fail "devstack up: exited before its ready line"
		show_log_tail
		DEVSTACK_PID=""
		echo "$passed passed, $failed failed"
		exit 1
	fi
	if ((SECONDS >= deadline)); then
		fail "devstack up: no ready line within ${READY_TIMEOUT}s"
		show_log_tail
		echo "$passed passed, $failed failed"
		exit 1
	fi
	sleep 0.5
done
READY_LINE="$(grep -m1 '^ready ' "$LOG")"
log "$READY_LINE"
check "devstack up: ready line names the gateway" grep -q "gateway=http://localhost:$((8080 + OFFSET))" <<<"$READY_LINE"

# descendants PID: every process below PID (services and Consul run in their own groups).
descendants() {
	local c
	for c in $(pgrep -P "$1" || true); do
		echo "$c"
		descendants "$c"
	done
}
CHILDREN="$(descendants "$DEVSTACK_PID" | tr '\n' ' ')"
log "devstack pid $DEVSTACK_PID, children: $CHILDREN"

# req METHOD PATH [curl args...]: sets CODE (HTTP status, 000 on a transport error) and BODY;
# response headers are in $WORK/headers.
CODE=""
BODY=""
req() {
	local method=$1 path=$2
	shift 2
	CODE="$(curl -sS --max-time 15 -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' \
		-X "$method" "$GW$path" "$@" 2>"$WORK/curl.err")" || CODE=000
	BODY="$(cat "$WORK/body" 2>/dev/null || true)"
}
header() { grep -i "^$1:" "$WORK/headers" | head -n1 | sed -E 's/^[^:]*: *//; s/\r$//'; }
json_id() { sed -nE 's/.*"id": *"([^"]+)".*/\1/p' <<<"$1" | head -n1; }
expect_code() { # DESCRIPTION WANT: a PASS/FAIL line for the last req, with the body on failure
	if [[ "$CODE" == "$2" ]]; then pass "$1"; else fail "$1: want HTTP $2, got $CODE: $BODY"; fi
}
# wait_view WANT(present|absent) ID LIMIT: polls /v1/last-read until ID is (not) listed.
wait_view() {
	local want=$1 id=$2 limit=$3 deadline=$((SECONDS + VIEW_TIMEOUT))
	while ((SECONDS < deadline)); do
		req GET "/v1/last-read?limit=$limit"
		if [[ "$CODE" == 200 ]]; then
			if grep -q "\"$id\"" <<<"$BODY"; then
				[[ $want == present ]] && return 0
			else
				[[ $want == absent ]] && return 0
			fi
		fi
		sleep 0.2
	done
	echo "  last answer: HTTP $CODE $BODY"
	return 1
}

TOKEN="$("$ROOT/bin/gateway" token --sub e2e-user)"
check "token: minted with gateway token" test -n "$TOKEN"
AUTH=(-H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json')

req GET /healthz
expect_code "gateway /healthz" 200
req GET /readyz
expect_code "gateway /readyz" 200
req GET /docs
expect_code "gateway /docs (API docs page)" 200
req GET /openapi.json
expect_code "gateway /openapi.json" 200
check "/openapi.json documents /v1/last-read" grep -q '/v1/last-read' <<<"$BODY"

req POST /v1/books -H 'Content-Type: application/json' -d '{"title":"No Token","author":"Nobody"}'
expect_code "write without a token is refused" 401

# The ready line promises a usable platform: the first write must reach bookshelf-commands,
# not answer 503 while Consul has yet to mark the new instance passing.
req POST /v1/books "${AUTH[@]}" -d '{"author":"No Title"}'
expect_code "a write right after the ready line reaches bookshelf-commands (400: no title)" 400
if [[ "$CODE" == 503 ]]; then
	deadline=$((SECONDS + VIEW_TIMEOUT)) start=$SECONDS
	while [[ "$CODE" == 503 ]] && ((SECONDS < deadline)); do
		sleep 0.2
		req POST /v1/books "${AUTH[@]}" -d '{"author":"No Title"}'
	done
	log "writes reached bookshelf-commands $((SECONDS - start))s after the first 503"
	expect_code "book without a title is rejected" 400
fi
check "400 answer is JSON naming the field" grep -q '"code".*title\|title.*"code"' <<<"$BODY"

KEY="e2e-$RANDOM$RANDOM"
req POST /v1/books "${AUTH[@]}" -H "Idempotency-Key: $KEY" \
	-d '{"title":"The Go Programming Language","author":"Alan Donovan","isbn":"9780134190440"}'
expect_code "add book 1" 201
BOOK1="$(json_id "$BODY")"
check "add book 1: answer carries an id ($BOOK1)" test -n "$BOOK1"

req POST /v1/books "${AUTH[@]}" -H "Idempotency-Key: $KEY" \
	-d '{"title":"The Go Programming Language","author":"Alan Donovan","isbn":"9780134190440"}'
RETRY_ID="$(json_id "$BODY")"
check "retry with the same Idempotency-Key returns the same book" test "$CODE:$RETRY_ID" == "201:$BOOK1"

req POST /v1/books "${AUTH[@]}" -d '{"title":"Dune","author":"Frank Herbert"}'
expect_code "add book 2" 201
BOOK2="$(json_id "$BODY")"
check "add book 2: a different id ($BOOK2)" test -n "$BOOK2" -a "$BOOK2" != "$BOOK1"

req GET "/v1/books/$BOOK1"
expect_code "get book 1" 200
check "get book 1: the stored title" grep -q 'The Go Programming Language' <<<"$BODY"

REQ_ID="e2e-request-$RANDOM$RANDOM"
req POST "/v1/books/$BOOK1/read" "${AUTH[@]}" -H "X-Request-Id: $REQ_ID"
expect_code "mark book 1 read" 200
check "X-Request-Id sent is echoed" test "$(header X-Request-Id)" == "$REQ_ID"
req GET /v1/last-read
check "X-Request-Id generated when not sent" test -n "$(header X-Request-Id)"

check "book 1 appears in /v1/last-read (within ${VIEW_TIMEOUT}s)" wait_view present "$BOOK1" 5
check "last-read entry has title, author and read_at" \
	grep -q '"title": *"The Go Programming Language".*"read_at"' <<<"$BODY"

PUSHED="e2e-pushed-$RANDOM$RANDOM"
if "$WORK/bin/kafkapush" -b "$KAFKA" book read --id "$PUSHED" --title "Pushed Book" --author "E2E Tester" \
	>"$WORK/kafkapush.out" 2>&1; then
	pass "kafkapush book read"
else
	fail "kafkapush book read: $(tail -n 5 "$WORK/kafkapush.out")"
fi
check "pushed read event appears in /v1/last-read" wait_view present "$PUSHED" 10

req DELETE "/v1/books/$BOOK1" "${AUTH[@]}"
expect_code "delete book 1" 200
req GET "/v1/books/$BOOK1"
expect_code "deleted book 1 answers 404" 404
check "404 answer is JSON with a code" grep -q '"code"' <<<"$BODY"
req DELETE "/v1/books/$BOOK1" "${AUTH[@]}"
expect_code "deleting it again answers 404" 404
check "deleted book 1 leaves /v1/last-read" wait_view absent "$BOOK1" 100
req GET "/v1/books/$BOOK2"
expect_code "book 2 is still there" 200

log "stopping devstack with SIGTERM"
stop_devstack
check "devstack logged a clean stop" grep -q 'stopped' "$LOG"
left=""
for pid in $CHILDREN; do
	kill -0 "$pid" 2>/dev/null && left+=" $pid($(ps -o comm= -p "$pid" 2>/dev/null || true))"
done
check "no child process left after SIGTERM${left:+ (left:$left)}" test -z "$left"
busy=""
for p in $DEFAULT_PORTS; do
	port_busy $((p + OFFSET)) && busy+=" $((p + OFFSET))"
done
check "every port released${busy:+ (still open:$busy)}" test -z "$busy"

echo "$passed passed, $failed failed"
if ((failed)); then
	show_log_tail
	exit 1
fi
