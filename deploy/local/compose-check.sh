#!/usr/bin/env bash
# Builds deploy/compose/check (compose-go, the library Docker Compose loads files with) into the cache
# and prints its path: the tests check the compose file with it, offline, without a container engine.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/lib.sh"
SRC="$(cd "$HERE/../compose/check" && pwd)"
SUM=$(cat "$SRC/go.mod" "$SRC/go.sum" "$SRC/main.go" | sha256sum | cut -c1-12)
BIN="$PROACT_CACHE/bin/compose-check-$SUM"
if [[ ! -x "$BIN" ]]; then
  log "building compose-check (compose-go) from its Go module"
  mkdir -p "$PROACT_CACHE/bin"
  (cd "$SRC" && go build -o "$BIN.tmp" . && mv "$BIN.tmp" "$BIN")
fi
echo "$BIN"
