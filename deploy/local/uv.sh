#!/usr/bin/env bash
# Installs uv, the tool that installs proact's Python packages from uv.lock, into the cache (its own
# small virtual environment, so that `uv sync` never removes it from the project's). Prints its path.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/lib.sh"
VERSION="${PROACT_UV_VERSION:-0.13.9}"
PYTHON_BIN="${PYTHON_BIN:-python3}"
DIR="$PROACT_CACHE/tools/uv-$VERSION"
if [[ ! -x "$DIR/bin/uv" ]]; then
  log "installing uv $VERSION from PyPI"
  rm -rf "$DIR.tmp"
  "$PYTHON_BIN" -m venv "$DIR.tmp"
  "$DIR.tmp/bin/pip" install -q --disable-pip-version-check "uv==$VERSION"
  rm -rf "$DIR" && mv "$DIR.tmp" "$DIR"
fi
echo "$DIR/bin/uv"
