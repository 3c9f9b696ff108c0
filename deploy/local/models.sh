#!/usr/bin/env bash
# Trains the default intent and churn models from the data shipped in data/ and promotes them,
# unless the registry already has a promoted model of that kind.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/lib.sh"
ROOT="$(cd "$HERE/../.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
build="$PROACT_CACHE/model-builds"
promoted() { "$PYTHON" -m services.trainer registry list 2>/dev/null | awk -v k="$1" '$1 == k && $3 == "promoted"' | grep -q .; }
cd "$ROOT"
if ! promoted intent; then
  log "training the default intent model (UCI Online Shoppers, Feb-Oct)"
  "$PYTHON" -m services.trainer train intent --data data/online_shoppers/sessions_feb_oct.csv \
    --out "$build/intent-$(date +%s)" --promote >/dev/null
fi
if ! promoted churn; then
  log "training the default churn model (CDNOW, as of 1997-09-30, 273-day horizon)"
  "$PYTHON" -m services.trainer train churn --orders data/cdnow/orders_dev.ndjson.gz --as-of 1997-09-30 \
    --horizon-days 273 --out "$build/churn-$(date +%s)" --promote >/dev/null
fi
"$PYTHON" -m services.trainer registry list | sed 's/^/[models] /' >&2
