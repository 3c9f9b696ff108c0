#!/usr/bin/env bash
# Helpers shared by the local infrastructure scripts: cache folder, PID files, readiness waits.
set -euo pipefail

export PROACT_CACHE="${PROACT_CACHE:-$HOME/.cache/proact}"
# every script and service reads the models where `make models` writes them
export PROACT_MODEL_DIR="${PROACT_MODEL_DIR:-$PROACT_CACHE/models}"
PROACT_KAFKA_HOST="${PROACT_KAFKA_HOST:-127.0.0.1}"
PROACT_KAFKA_PORT="${PROACT_KAFKA_PORT:-9092}"
PROACT_KAFKA_CONTROLLER_PORT="${PROACT_KAFKA_CONTROLLER_PORT:-9093}"
PROACT_MONGO_HOST="${PROACT_MONGO_HOST:-127.0.0.1}"
PROACT_MONGO_PORT="${PROACT_MONGO_PORT:-27017}"
RUN_DIR="$PROACT_CACHE/run"
LOG_DIR="$PROACT_CACHE/logs"
mkdir -p "$PROACT_CACHE" "$RUN_DIR" "$LOG_DIR"

log() { printf '[%s] %s\n' "$(basename "$0" .sh)" "$*" >&2; }

# pid_alive NAME -> 0 when the process in RUN_DIR/NAME.pid is running
pid_alive() {
  local f="$RUN_DIR/$1.pid"
  [[ -f "$f" ]] && kill -0 "$(cat "$f")" 2>/dev/null
}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# listener_pid PORT -> the PID listening on the TCP port, where `ss` can tell (empty otherwise)
listener_pid() { ss -Hltnp "sport = :$1" 2>/dev/null | grep -o 'pid=[0-9]*' | head -n 1 | cut -d= -f2; }

# refuse_taken_port NAME HOST PORT: fail, saying so, when something already answers on the port that
# NAME is about to use: a stray local mongod or Kafka would otherwise be used silently
refuse_taken_port() {
  local name=$1 host=$2 port=$3 pid
  port_open "$host" "$port" || return 0
  pid=$(listener_pid "$port")
  log "port $host:$port is taken by another process${pid:+ (pid $pid)}, not a $name this script started;" \
    "stop it, or move $name to another port (see deploy/local/README.md)"
  return 1
}

# wait_port NAME HOST PORT SECONDS: wait until the port accepts connections, or fail with the log tail
wait_port() {
  local name=$1 host=$2 port=$3 limit=$4 i
  for ((i = 0; i < limit * 10; i++)); do
    if port_open "$host" "$port"; then
      # the answer must come from the process this script started, not from one that was there
      local owner; owner=$(listener_pid "$port")
      if [[ -n "$owner" && "$owner" != "$(cat "$RUN_DIR/$name.pid" 2>/dev/null)" ]]; then
        log "$host:$port answers, but from pid $owner, not the $name this script started"; return 1
      fi
      return 0
    fi
    if ! pid_alive "$name"; then
      log "$name exited during start-up; last log lines:"; tail -n 30 "$LOG_DIR/$name.log" >&2 || true
      return 1
    fi
    sleep 0.1
  done
  log "$name not ready on $host:$port after ${limit}s"; tail -n 30 "$LOG_DIR/$name.log" >&2 || true
  return 1
}

# stop_pid NAME: SIGTERM, wait up to 20 s, then SIGKILL
stop_pid() {
  local name=$1 f="$RUN_DIR/$1.pid" pid i
  if ! pid_alive "$name"; then rm -f "$f"; log "$name not running"; return 0; fi
  pid=$(cat "$f")
  kill -TERM "$pid" 2>/dev/null || true
  for ((i = 0; i < 200; i++)); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$f"; log "$name stopped"; return 0; }
    sleep 0.1
  done
  log "$name did not stop on SIGTERM; killing"
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$f"
}

status_pid() {
  if pid_alive "$1"; then echo "$1: running (pid $(cat "$RUN_DIR/$1.pid"))"; else echo "$1: stopped"; return 3; fi
}
