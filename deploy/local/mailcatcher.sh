#!/usr/bin/env bash
# The local SMTP catcher (deploy/local/mailcatcher.py): start|stop|status. Messages land as .eml
# files in $PROACT_CACHE/mail; the dispatcher of `make run` sends its e-mail here.
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/lib.sh"
ROOT="$(cd "$HERE/../.." && pwd)"
PYTHON="${PYTHON:-$ROOT/.venv/bin/python}"
PORT="${PROACT_SMTP_PORT:-2525}"
MAIL_DIR="${PROACT_MAIL_DIR:-$PROACT_CACHE/mail}"

# the banner says it is ours: a stray mail server on the port is not used silently
ours() {
  local greeting=""
  { exec 3<>"/dev/tcp/127.0.0.1/$PORT"; } 2>/dev/null || return 1
  read -r -t 2 greeting <&3 || true
  printf 'QUIT\r\n' >&3 2>/dev/null || true
  exec 3<&- 3>&-
  [[ "$greeting" == 220*proact-mailcatcher* ]]
}

case "${1:-}" in
  start)
    if pid_alive mailcatcher && ours; then log "mail catcher already running on $PORT"; exit 0; fi
    refuse_taken_port "mail catcher" 127.0.0.1 "$PORT"
    nohup "$PYTHON" "$HERE/mailcatcher.py" --port "$PORT" --dir "$MAIL_DIR" >>"$LOG_DIR/mailcatcher.log" 2>&1 </dev/null &
    echo $! >"$RUN_DIR/mailcatcher.pid"
    for ((i = 0; i < 100; i++)); do
      if ours; then log "mail catcher on 127.0.0.1:$PORT, messages in $MAIL_DIR"; exit 0; fi
      pid_alive mailcatcher || break
      sleep 0.1
    done
    log "the mail catcher did not start:"; tail -n 20 "$LOG_DIR/mailcatcher.log" >&2; exit 1 ;;
  stop) stop_pid mailcatcher ;;
  status) status_pid mailcatcher ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
