#!/usr/bin/env bash
# Installs and runs a single-node Apache Kafka broker (KRaft, combined mode) from Maven Central jars.
# usage: kafka.sh install|start|stop|status|reset
set -euo pipefail
HERE="$(cd "$(dirname "$0")" && pwd)"
source "$HERE/lib.sh"

KAFKA_HOME="$PROACT_CACHE/kafka"
LIBS="$KAFKA_HOME/libs"
DATA="$KAFKA_HOME/data"
CONF="$KAFKA_HOME/server.properties"
HEAP="${PROACT_KAFKA_HEAP:-512m}"
PYTHON="${PYTHON:-python3}"

install() {
  command -v java >/dev/null || { log "java not found (Java 17 is needed)"; exit 1; }
  # the pom's content decides whether the jars are current, so a version bump re-fetches
  local stamp="$KAFKA_HOME/.pom.sha" sum
  sum=$(sha256sum "$HERE/kafka/pom.xml" | cut -d' ' -f1)
  if [[ -f "$stamp" && "$(cat "$stamp")" == "$sum" ]] && compgen -G "$LIBS/kafka_2.13-*.jar" >/dev/null; then
    return 0
  fi
  command -v mvn >/dev/null || { log "mvn not found (apt-get install maven)"; exit 1; }
  log "fetching Kafka jars with Maven into $LIBS"
  rm -rf "$LIBS"; mkdir -p "$LIBS"
  mvn -B -q -f "$HERE/kafka/pom.xml" dependency:copy-dependencies \
    -DoutputDirectory="$LIBS" -DincludeScope=runtime -Dmaven.repo.local="$PROACT_CACHE/m2"
  echo "$sum" >"$stamp"
}

write_config() {
  mkdir -p "$DATA"
  cat >"$CONF" <<CONF
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$PROACT_KAFKA_HOST:$PROACT_KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$PROACT_KAFKA_HOST:$PROACT_KAFKA_PORT,CONTROLLER://$PROACT_KAFKA_HOST:$PROACT_KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$PROACT_KAFKA_HOST:$PROACT_KAFKA_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$DATA
num.partitions=6
default.replication.factor=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
# Kafka 4.x waits 5 ms per offset commit by default; proact commits per batch, locally no wait at all
group.coordinator.append.linger.ms=0
num.network.threads=2
num.io.threads=2
log.cleaner.dedupe.buffer.size=33554432
auto.create.topics.enable=false
CONF
}

start() {
  install
  if pid_alive kafka; then log "kafka already running"; else
    write_config
    if [[ ! -f "$DATA/meta.properties" ]]; then
      local id
      id=$(java -Dlog4j2.configurationFile="$HERE/kafka/log4j2-tools.xml" -cp "$LIBS/*" kafka.tools.StorageTool random-uuid)
      java -Dlog4j2.configurationFile="$HERE/kafka/log4j2-tools.xml" -cp "$LIBS/*" kafka.tools.StorageTool \
        format --standalone -t "$id" -c "$CONF" --ignore-formatted >/dev/null
    fi
    refuse_taken_port kafka "$PROACT_KAFKA_HOST" "$PROACT_KAFKA_PORT"
    log "starting kafka on $PROACT_KAFKA_HOST:$PROACT_KAFKA_PORT (log: $LOG_DIR/kafka.log)"
    nohup java "-Xms$HEAP" "-Xmx$HEAP" -XX:+UseG1GC -Djava.awt.headless=true \
      -Dlog4j2.configurationFile="$HERE/kafka/log4j2.xml" -cp "$LIBS/*" kafka.Kafka "$CONF" \
      >>"$LOG_DIR/kafka.log" 2>&1 </dev/null &
    echo $! >"$RUN_DIR/kafka.pid"
    wait_port kafka "$PROACT_KAFKA_HOST" "$PROACT_KAFKA_PORT" 60
  fi
  # topics come from the registry in shared/; the call also waits until metadata is answered
  (cd "$HERE/../.." && "$PYTHON" -m shared.contract ensure)
}

case "${1:-}" in
  install) install ;;
  start) start ;;
  stop) stop_pid kafka ;;
  status) status_pid kafka ;;
  reset) stop_pid kafka; rm -rf "$DATA"; log "kafka data removed" ;;
  *) echo "usage: $0 install|start|stop|status|reset" >&2; exit 2 ;;
esac
