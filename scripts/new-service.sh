#!/usr/bin/env bash
# new-service.sh NAME: start a new service from the bookshelf-lastread template.
#
#   scripts/new-service.sh bookshelf-authors
#   scripts/new-service.sh bookshelf-authors --package authors --grpc-port 9003 --http-port 8003
#
# Copies services/bookshelf-lastread (a Kafka-fed view with gRPC + REST, Consul registration,
# dead-letter topic, catch-up/rebuild and tests) to services/NAME and renames what makes it a
# different service:
#   - the Go module path (github.com/brook-dev/brook/services/NAME) and its imports;
#   - the internal package (internal/lastread -> internal/PACKAGE), its name and metric names
#     (brook_lastread_* -> brook_PACKAGE_*) and its bbolt bucket;
#   - the service name, used for Consul registration, log lines, the consumer group, the
#     dead-letter topic (NAME.dlq), the CLI name and Kafka client ids;
#   - the default ports (the first free pair 90NN/80NN not used by another service, or the
#     ones given);
# then adds the module to go.work (`go work use`). It never overwrites: an existing
# services/NAME, an invalid name or a port already used by another service is refused.
#
# Options:
#   --package PKG     Go package name of the view (default: NAME's last dash-separated word,
#                     e.g. "authors" for bookshelf-authors, unless that word is taken by an
#                     import of the template, then NAME without dashes)
#   --grpc-port N     default gRPC port (default: the first free 9003..9099)
#   --http-port N     default HTTP port (default: 8000 + the gRPC port's last two digits)
#   --from DIR        template service (default services/bookshelf-lastread)
#   --no-work         do not run `go work use`
# Works on Linux and macOS (needs bash, perl and go).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

usage() {
	cat >&2 <<'EOF'
usage: scripts/new-service.sh NAME [--package PKG] [--grpc-port N] [--http-port N] [--from DIR] [--no-work]
  NAME: lowercase letters, digits and single dashes, 3 to 40 characters, starting with a
        letter (it becomes the Consul service name and a DNS label), e.g. bookshelf-authors
EOF
}
die() {
	echo "new-service: $*" >&2
	exit 1
}
die_usage() { # the message first, then the usage
	echo "new-service: $*" >&2
	usage
	exit 2
}

NAME="" PKG="" GRPC_PORT="" HTTP_PORT="" FROM="services/bookshelf-lastread" WORK=1
while (($#)); do
	case "$1" in
	--package | --grpc-port | --http-port | --from)
		(($# >= 2)) || die_usage "$1 needs a value"
		case "$1" in
		--package) PKG="$2" ;;
		--grpc-port) GRPC_PORT="$2" ;;
		--http-port) HTTP_PORT="$2" ;;
		--from) FROM="$2" ;;
		esac
		shift 2
		;;
	--no-work) WORK=0 && shift ;;
	-h | --help) usage && exit 0 ;;
	-*) die_usage "unknown option $1" ;;
	*)
		[[ -z "$NAME" ]] || die_usage "one NAME only (got \"$NAME\" and \"$1\")"
		NAME="$1" && shift
		;;
	esac
done
[[ -n "$NAME" ]] || die_usage "a NAME is required"

# ---- validate ---------------------------------------------------------------------------
if ! [[ "$NAME" =~ ^[a-z][a-z0-9]*(-[a-z0-9]+)*$ ]] || ((${#NAME} < 3 || ${#NAME} > 40)); then
	die_usage "invalid service name \"$NAME\": use lowercase letters, digits and single dashes, 3 to 40 characters, starting with a letter"
fi
for reserved in kafka consul devstack kafkapush kit api gateway; do
	[[ "$NAME" != "$reserved" ]] || die "invalid service name \"$NAME\": reserved by the platform"
done
[[ ! -e "services/$NAME" ]] || die "services/$NAME already exists; pick another name (nothing was changed)"
[[ -f "$FROM/go.mod" ]] || die "template $FROM not found (no go.mod); run from a Brook checkout"
TEMPLATE_NAME="$(basename "$FROM")"
[[ -d "$FROM/internal/lastread" ]] || die "template $FROM has no internal/lastread package; this script knows the bookshelf-lastread layout only"

# Names the template's package files import or declare; the new package must not shadow them.
TAKEN=" main internal lastread config events log kitlog service store registry track api
	context errors fmt io os signal syscall time strings filepath slog json sarama cobra
	protojson prometheus promauto bookshelfv1 grpc codes status timestamppb testing http
	break case chan const continue default defer else fallthrough for func go goto if import
	interface map package range return select struct switch type var "
if [[ -z "$PKG" ]]; then
	PKG="${NAME##*-}"
	if [[ "$TAKEN" == *" $PKG "* || ${#PKG} -lt 3 ]]; then
		PKG="${NAME//-/}"
	fi
fi
[[ "$PKG" =~ ^[a-z][a-z0-9]*$ ]] || die "invalid --package \"$PKG\": lowercase letters and digits, starting with a letter"
[[ "$TAKEN" != *" $PKG "* ]] || die "invalid --package \"$PKG\": it would shadow an import or keyword of the template; pick another"

# Ports already claimed: every 4-digit 8xxx/9xxx number in the services' configs and in
# devstack's catalog (the source of `make run`'s ports).
used_ports() {
	cat services/*/config.go services/*/config.yaml tools/devstack/internal/catalog/catalog.go 2>/dev/null |
		grep -oE '\b[89][0-9]{3}\b' | sort -u
}
USED=" $(used_ports | tr '\n' ' ') "
check_port() { # FLAG VALUE
	[[ "$2" =~ ^[0-9]+$ ]] && (($2 >= 1 && $2 <= 65535)) || die "$1 \"$2\": not a port number"
	[[ "$USED" != *" $2 "* ]] || die "$1 $2 is already used by another service (used: $(echo $USED | tr ' ' ','))"
}
if [[ -z "$GRPC_PORT" ]]; then
	for n in $(seq 3 99); do
		g=$((9000 + n)) h=$((8000 + n))
		if [[ "$USED" != *" $g "* && "$USED" != *" $h "* && ( -n "$HTTP_PORT" || "$h" != 8080 ) ]]; then
			GRPC_PORT=$g
			[[ -n "$HTTP_PORT" ]] || HTTP_PORT=$h
			break
		fi
	done
	[[ -n "$GRPC_PORT" ]] || die "no free default port pair 90NN/80NN; give --grpc-port and --http-port"
fi
[[ -n "$HTTP_PORT" ]] || HTTP_PORT=$((8000 + GRPC_PORT % 100))
check_port --grpc-port "$GRPC_PORT"
check_port --http-port "$HTTP_PORT"
[[ "$GRPC_PORT" != "$HTTP_PORT" ]] || die "--grpc-port and --http-port must differ"
command -v perl >/dev/null || die "perl is needed (it does the renaming)"

# ---- copy ---------------------------------------------------------------------------------
DEST="services/$NAME"
TMP="$(mktemp -d "${TMPDIR:-/tmp}/new-service.XXXXXX")"
trap 'rm -rf "$TMP"' EXIT
# The template's source files: what git tracks when this is a git checkout (no data dirs or
# binaries of a local run), else every file except run-time output.
if git rev-parse --is-inside-work-tree >/dev/null 2>&1 && [[ -n "$(git ls-files -co --exclude-standard -- "$FROM" | head -n1)" ]]; then
	git ls-files -z -co --exclude-standard -- "$FROM" | while IFS= read -r -d '' f; do
		[[ -f "$f" ]] || continue # deleted in the working tree
		mkdir -p "$TMP/new/$(dirname "${f#"$FROM"/}")"
		cp -p "$f" "$TMP/new/${f#"$FROM"/}"
	done
else
	(cd "$FROM" && find . -type f ! -path './data/*' ! -name '*.test' ! -name '*.db' ! -name '*.out' -print0) |
		while IFS= read -r -d '' f; do
			mkdir -p "$TMP/new/$(dirname "$f")"
			cp -p "$FROM/$f" "$TMP/new/$f"
		done
fi
mv "$TMP/new/internal/lastread" "$TMP/new/internal/$PKG"

# ---- rename -------------------------------------------------------------------------------
# The service name goes through a placeholder so a NAME containing "lastread" is not renamed
# twice. Word boundaries keep ListLastRead, BookshelfLastRead (the API's names) intact.
export NS_NAME="$NAME" NS_PKG="$PKG" NS_TEMPLATE="$TEMPLATE_NAME" \
	NS_OLD_GRPC=9002 NS_OLD_HTTP=8002 NS_GRPC="$GRPC_PORT" NS_HTTP="$HTTP_PORT"
find "$TMP/new" -type f \( -name '*.go' -o -name '*.yaml' -o -name '*.yml' -o -name '*.md' -o -name 'go.mod' \) -print0 |
	xargs -0 perl -pi -e '
		s/\Q$ENV{NS_TEMPLATE}\E/\x{1}NAME\x{1}/g;
		s/bookshelfv1\.ServiceLastRead\b/serviceName/g;
		s/\bbrook_lastread_/brook_$ENV{NS_PKG}_/g;
		s/\blastread\b/$ENV{NS_PKG}/g;
		s/:$ENV{NS_OLD_GRPC}\b/:$ENV{NS_GRPC}/g;
		s/:$ENV{NS_OLD_HTTP}\b/:$ENV{NS_HTTP}/g;
		s/\x{1}NAME\x{1}/$ENV{NS_NAME}/g;
	'
cat >"$TMP/new/name.go" <<EOF
package main

// serviceName is this service's name: its Consul service, the "service" field of its log
// lines and metrics, its Kafka consumer group and the prefix of its dead-letter topic.
// Generated by scripts/new-service.sh from $FROM.
const serviceName = "$NAME"
EOF
# Files that no longer use the api package after the rename must not import it.
for f in "$TMP"/new/*.go "$TMP"/new/internal/"$PKG"/*.go; do
	if grep -q 'bookshelfv1 "github.com/brook-dev/brook/api/bookshelf/v1"' "$f" && ! grep -q 'bookshelfv1\.' "$f"; then
		perl -ni -e 'print unless /^\s*bookshelfv1 "github.com\/brook-dev\/brook\/api\/bookshelf\/v1"\s*$/' "$f"
	fi
done
if command -v gofmt >/dev/null; then
	gofmt -w "$TMP/new" # import blocks after a removed line
fi

# ---- install ------------------------------------------------------------------------------
mkdir -p "$(dirname "$DEST")"
mv "$TMP/new" "$DEST"
if ((WORK)) && [[ -f go.work ]]; then
	go work use "./$DEST"
fi

cat <<EOF
created $DEST from $FROM
  module   github.com/brook-dev/brook/$DEST
  package  $DEST/internal/$PKG
  consul   $NAME   (consumer group $NAME, dead letters to $NAME.dlq)
  ports    gRPC :$GRPC_PORT, HTTP :$HTTP_PORT
$( ((WORK)) && [[ -f go.work ]] && echo "  go.work  added ./$DEST")

next:
  build and test    go build -o bin/$NAME ./$DEST && (cd $DEST && go test ./...)
  make it yours     internal/$PKG/projection.go (which events change the view, how) and
                    internal/$PKG/server.go (what it serves); see docs/tutorials/03-write-your-own-service.md
  run it            next to \`make run\`: BROOK_CONSUL_ADDR=localhost:8500 BROOK_LOG_FORMAT=text bin/$NAME
  in \`make run\`     add to tools/devstack/internal/catalog/catalog.go:
                    {Name: "$NAME", Dir: "$DEST", GRPCPort: $GRPC_PORT, HTTPPort: $HTTP_PORT},
  in \`make test\`    nothing to do: every module in go.work is tested and linted
EOF
