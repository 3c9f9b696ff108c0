#!/usr/bin/env bash
# Starts, stops and reports proact's own services as local processes (logs and PID files in the cache).
# usage: services.sh start|stop|status [service...]   (default: all, from the catalogue: shared/catalogue.py)
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/lib.sh"
ROOT="$(cd "$HERE/../.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"

# name -> "module port_env port health", read once from the catalogue
declare -A CATALOGUE
ALL=()
while read -r name module port_env port health; do
  CATALOGUE[$name]="$module $port_env $port $health"
  ALL+=("$name")
done < <(cd "$ROOT" && "$PYTHON" -m shared.catalogue)

field() { local -a f; read -r -a f <<<"${CATALOGUE[$1]}"; echo "${f[$2]}"; }
port_of() { local var; var=$(field "$1" 1); echo "${!var:-$(field "$1" 2)}"; }
health_url() { echo "http://127.0.0.1:$(port_of "$1")$(field "$1" 3)"; }

wait_healthy() {
  local name=$1 url i
  url=$(health_url "$name")
  for ((i = 0; i < 300; i++)); do
    if ! pid_alive "$name"; then log "$name exited; last log lines:"; tail -n 20 "$LOG_DIR/$name.log" >&2; return 1; fi
    if curl -fsS -o /dev/null "$url" 2>/dev/null; then log "$name healthy ($url)"; return 0; fi
    sleep 0.1
  done
  log "$name not healthy after 30 s"; tail -n 20 "$LOG_DIR/$name.log" >&2; return 1
}

start_one() {
  local name=$1 port
  if pid_alive "$name"; then log "$name already running"; return 0; fi
  port=$(port_of "$name")
  if port_open 127.0.0.1 "$port"; then
    log "port $port is taken by another process (not started by this script); stop it or set $name's port"
    return 1
  fi
  (cd "$ROOT" && OTEL_SERVICE_NAME="proact-$name" PROACT_TRACES_FILE="$LOG_DIR/traces-$name.jsonl" \
    nohup "$PYTHON" -m "$(field "$name" 0)" \
    >>"$LOG_DIR/$name.log" 2>&1 </dev/null & echo $! >"$RUN_DIR/$name.pid")
}

cmd=${1:-}; shift || true
names=("$@"); [[ ${#names[@]} -gt 0 ]] || names=("${ALL[@]}")
for n in "${names[@]}"; do
  [[ -n "${CATALOGUE[$n]:-}" ]] || { echo "unknown service $n; known: ${ALL[*]}" >&2; exit 2; }
done
case "$cmd" in
  start)
    for n in "${names[@]}"; do start_one "$n"; done
    for n in "${names[@]}"; do wait_healthy "$n"; done ;;
  stop) for n in "${names[@]}"; do stop_pid "$n"; done ;;
  status) rc=0; for n in "${names[@]}"; do status_pid "$n" || rc=3; done; exit $rc ;;
  *) echo "usage: $0 start|stop|status [${ALL[*]}]" >&2; exit 2 ;;
esac
