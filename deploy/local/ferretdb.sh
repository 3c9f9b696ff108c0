#!/usr/bin/env bash
# Builds and runs FerretDB v1 (MongoDB wire protocol) with its SQLite backend, on loopback.
# usage: ferretdb.sh install|start|stop|status|reset
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/lib.sh"

VERSION="${PROACT_FERRETDB_VERSION:-v1.24.2}"
FERRET_HOME="$PROACT_CACHE/ferretdb"
BIN="$FERRET_HOME/bin/ferretdb-$VERSION"
DATA="$FERRET_HOME/data"
PATCH="$HERE/ferretdb/$VERSION-fixes.patch"
# SQLite's default in WAL mode (FULL) waits for an fsync at every commit, and FerretDB commits each
# update of a bulk write on its own: about one millisecond of disk per document. NORMAL syncs at
# checkpoints only; a killed FerretDB still loses nothing (the WAL is in the OS's page cache), only
# a power cut of the machine can lose the last commits. deploy/local/README.md: "FerretDB: the patch and the gaps".
SQLITE_SYNC="${PROACT_FERRETDB_SQLITE_SYNC:-normal}"

install() {
  local stamp="$FERRET_HOME/.build.sha" sum
  sum=$(cat "$PATCH" 2>/dev/null | sha256sum | cut -d' ' -f1)
  if [[ -x "$BIN" && -f "$stamp" && "$(cat "$stamp")" == "$sum" ]]; then return 0; fi
  command -v go >/dev/null || { log "go not found"; exit 1; }
  log "building FerretDB $VERSION from its Go module (about a minute on 2 cores)"
  # `go install` of the module gives a binary that panics: version.txt is made by the release
  # pipeline, so build from a writable copy of the module with that file written in.
  local dir src
  dir=$(GOFLAGS=-mod=mod go mod download -json "github.com/FerretDB/FerretDB@$VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [[ -d "$dir" ]] || { log "go mod download gave no module folder"; exit 1; }
  src="$FERRET_HOME/src"
  rm -rf "$src"; mkdir -p "$FERRET_HOME/bin"; cp -r "$dir" "$src"; chmod -R u+w "$src"
  echo "$VERSION" >"$src/build/version/version.txt"
  # Fixes the SQLite _id index never being used, the hang on 100+ updates in one batch and
  # $group's second accumulator; deploy/local/README.md: "FerretDB: the patch and the gaps".
  if [[ -f "$PATCH" ]]; then (cd "$src" && patch -s -p1 <"$PATCH"); fi
  (cd "$src" && CGO_ENABLED=0 go build -trimpath -buildvcs=false -o "$BIN.tmp" ./cmd/ferretdb)
  mv "$BIN.tmp" "$BIN"
  rm -rf "$src"
  echo "$sum" >"$stamp"
}

start() {
  install
  if pid_alive ferretdb; then log "ferretdb already running"; return 0; fi
  mkdir -p "$DATA/sqlite" "$DATA/state"
  refuse_taken_port ferretdb "$PROACT_MONGO_HOST" "$PROACT_MONGO_PORT"
  log "starting ferretdb on $PROACT_MONGO_HOST:$PROACT_MONGO_PORT (log: $LOG_DIR/ferretdb.log)"
  nohup "$BIN" --handler=sqlite --sqlite-url="file:$DATA/sqlite/?_pragma=synchronous($SQLITE_SYNC)" \
    --listen-addr="$PROACT_MONGO_HOST:$PROACT_MONGO_PORT" --state-dir="$DATA/state" \
    --debug-addr=- --telemetry=disable --log-level=warn \
    >>"$LOG_DIR/ferretdb.log" 2>&1 </dev/null &
  echo $! >"$RUN_DIR/ferretdb.pid"
  wait_port ferretdb "$PROACT_MONGO_HOST" "$PROACT_MONGO_PORT" 30
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop_pid ferretdb ;;
  status) status_pid ferretdb ;;
  reset) stop_pid ferretdb; rm -rf "$DATA"; log "ferretdb data removed" ;;
  *) echo "usage: $0 install|start|stop|status|reset" >&2; exit 2 ;;
esac
