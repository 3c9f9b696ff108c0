#!/usr/bin/env bash
# Installs kustomize (v5, from its Go module) into the cache, for rendering and checking k8s/.
# Debian's kubectl 1.20 embeds kustomize 2, which predates components.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/lib.sh"
VERSION="${PROACT_KUSTOMIZE_VERSION:-v5.7.1}"
BIN="$PROACT_CACHE/bin/kustomize-$VERSION"
if [[ ! -x "$BIN" ]]; then
  log "building kustomize $VERSION from its Go module"
  mkdir -p "$PROACT_CACHE/bin"
  GOBIN="$PROACT_CACHE/bin/tmp-$$" go install "sigs.k8s.io/kustomize/kustomize/v5@$VERSION"
  mv "$PROACT_CACHE/bin/tmp-$$/kustomize" "$BIN"
  rmdir "$PROACT_CACHE/bin/tmp-$$"
fi
echo "$BIN"
