#!/usr/bin/env bash
# Trains the default intent and churn models from the data shipped in data/ and promotes them,
# unless the registry already has a promoted model of that kind (an intent model without the page
# statistics of the demo shop's pages is trained again: live, it would see none).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/lib.sh"
ROOT="$(cd "$HERE/../.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
build="$PROACT_CACHE/model-builds"
promoted() { "$PYTHON" -m services.trainer registry list 2>/dev/null | awk -v k="$1" '$1 == k && $3 == "promoted"' | grep -q .; }
with_page_stats() {
  "$PYTHON" -c 'import sys; from shared.models.registry import Registry; from shared.settings import TrainerSettings
m = Registry(TrainerSettings().model_dir).load_promoted("intent"); sys.exit(0 if m and m.page_stats else 1)' 2>/dev/null
}
cd "$ROOT"
if ! promoted intent || ! with_page_stats; then
  log "training the default intent model (UCI Online Shoppers, Feb-Oct), with the page statistics of a month of the demo shop's visits"
  mkdir -p "$build"
  history="$build/demo-history-$(date +%s).ndjson"
  PYTHONPATH="$ROOT" "$PYTHON" deploy/demo/shop.py --export-history "$history" >/dev/null
  "$PYTHON" -m services.trainer train intent --data data/online_shoppers/sessions_feb_oct.csv \
    --page-stats-events "$history" --out "$build/intent-$(date +%s)" --promote >/dev/null
  rm -f "$history"
fi
if ! promoted churn; then
  log "training the default churn model (CDNOW, as of 1997-09-30, 273-day horizon)"
  "$PYTHON" -m services.trainer train churn --orders data/cdnow/orders_dev.ndjson.gz --as-of 1997-09-30 \
    --horizon-days 273 --out "$build/churn-$(date +%s)" --promote >/dev/null
fi
"$PYTHON" -m services.trainer registry list | sed 's/^/[models] /' >&2
