#!/usr/bin/env bash
# `make run`: the local stack, every service and a demo shop, with a live account of what proact does.
# Ctrl-C stops everything this script started (a broker or database that was already running stays).
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/lib.sh"
ROOT="$(cd "$HERE/../.." && pwd)"
export PYTHON="$ROOT/.venv/bin/python"
export PROACT_DISPATCHER_OUTBOX_DIR="${PROACT_DISPATCHER_OUTBOX_DIR:-$PROACT_CACHE/outbox}"
# local secrets (unsubscribe links, the inbox's customer identity): generated once, kept in the cache
for name in unsubscribe identity; do
  [[ -s "$PROACT_CACHE/$name.secret" ]] || (umask 077 && "$PYTHON" -c 'import secrets; print(secrets.token_hex(32))' >"$PROACT_CACHE/$name.secret")
done
export PROACT_UNSUBSCRIBE_SECRET="${PROACT_UNSUBSCRIBE_SECRET:-$(cat "$PROACT_CACHE/unsubscribe.secret")}"
export PROACT_STOREFRONT_IDENTITY_SECRET="${PROACT_STOREFRONT_IDENTITY_SECRET:-$(cat "$PROACT_CACHE/identity.secret")}"
# e-mail goes to the local SMTP catcher (deploy/local/mailcatcher.py), which keeps each message as a file
export PROACT_SMTP_HOST="${PROACT_SMTP_HOST:-127.0.0.1}" PROACT_SMTP_PORT="${PROACT_SMTP_PORT:-2525}"
export PROACT_MAIL_DIR="${PROACT_MAIL_DIR:-$PROACT_CACHE/mail}"
# a silent customer's churn score is refreshed every minute here (a day by default), so the demo shows
# a win-back reaching a customer who stopped buying months ago
export PROACT_ENGINE_CHURN_REFRESH_S="${PROACT_ENGINE_CHURN_REFRESH_S:-60}"
# callbacks are promised within a minute here (two hours by default), so the demo shows the apology a
# request nobody called gets
export PROACT_STOREFRONT_CALLBACK_PROMISE_MIN="${PROACT_STOREFRONT_CALLBACK_PROMISE_MIN:-1}"
# the console span exporter would flood the service logs; `make run` keeps traces off unless asked
export OTEL_TRACES_EXPORTER="${OTEL_TRACES_EXPORTER:-none}"

started_infra=()
pid_alive kafka || started_infra+=(kafka)
pid_alive ferretdb || started_infra+=(ferretdb)
demo_pid=""
monitor_pid=""
cleanup() {
  trap - INT TERM EXIT
  echo; log "stopping"
  [[ -n "$demo_pid" ]] && kill "$demo_pid" 2>/dev/null || true
  [[ -n "$monitor_pid" ]] && kill "$monitor_pid" 2>/dev/null || true
  "$HERE/services.sh" stop || true
  "$HERE/mailcatcher.sh" stop || true
  for s in "${started_infra[@]}"; do "$HERE/$s.sh" stop || true; done
}
trap cleanup INT TERM EXIT

"$HERE/ferretdb.sh" start
"$HERE/kafka.sh" start
"$HERE/models.sh"
"$HERE/mailcatcher.sh" start
"$HERE/services.sh" start
# the admin API needs a key: one admin key for this machine, made once and kept in the cache
if [[ ! -s "$PROACT_CACHE/admin.key" ]]; then
  (umask 077 && cd "$ROOT" && "$PYTHON" -m services.admin create-key --name local --role admin >"$PROACT_CACHE/admin.key")
fi
cat <<MSG

  proact is running.  storefront http://127.0.0.1:8080/docs   admin http://127.0.0.1:8090/docs
  marketers' web UI http://127.0.0.1:8090/ui  (sign in with the key in $PROACT_CACHE/admin.key)
  demo shop page http://127.0.0.1:8080/demo
  dispatcher AsyncAPI http://127.0.0.1:8082/docs/asyncapi     logs $LOG_DIR
  e-mail as sent: $PROACT_MAIL_DIR/*.eml   other channels: $PROACT_DISPATCHER_OUTBOX_DIR/*.ndjson
  Ctrl-C stops everything.
  journeys as trace trees: make traces (in another terminal)

MSG
# a service that exits while the demo runs is reported at once, with the end of its log
services=$(cd "$ROOT" && "$PYTHON" -m shared.catalogue | cut -d' ' -f1)
(
  while sleep 3; do
    for s in $services; do
      if [[ -f "$RUN_DIR/$s.pid" ]] && ! pid_alive "$s"; then
        log "$s EXITED; the last lines of $LOG_DIR/$s.log:"; tail -n 15 "$LOG_DIR/$s.log" >&2
        rm -f "$RUN_DIR/$s.pid"
      fi
    done
  done
) &
monitor_pid=$!
(cd "$ROOT" && PYTHONPATH="$ROOT" PROACT_ADMIN_KEY="$(cat "$PROACT_CACHE/admin.key")" OTEL_SERVICE_NAME=demo-shop PROACT_TRACES_FILE="$LOG_DIR/traces-shop.jsonl" \
  "$PYTHON" deploy/demo/shop.py ${DEMO_ARGS:-} >>"$LOG_DIR/demo.log" 2>&1) &
demo_pid=$!
cd "$ROOT" && PYTHONPATH="$ROOT" "$PYTHON" deploy/demo/watch.py
