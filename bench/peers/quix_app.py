"""The Python peer of the engine benchmark: a Quix Streams application doing comparable stateful
work, exactly-once, on the same events (``bench/engine.py`` runs it in an environment of its own).

Per event, as the engine's simplest path does: parse the CloudEvent, check its four required
fields, count the events of its key, drop an id seen among the key's last 64, keep an order's
status; each ``order.placed`` makes one output record. State lives in Quix's RocksDB stores, backed
by its changelog topics, committed in Kafka transactions (``processing_guarantee="exactly-once"``).

    python quix_app.py BOOTSTRAP GROUP OUTPUT_TOPIC STATE_DIR INPUT_TOPIC [INPUT_TOPIC ...]

It commits every second (``QUIX_COMMIT_INTERVAL_S``), not every five as Quix does by default: the
benchmark reads progress from committed offsets, and over a backlog worked through in seconds a
five-second step made the figure coarse (the engine commits each batch).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from quixstreams import Application, State

REQUIRED = ("specversion", "id", "type", "subject")
SEEN_KEPT = 64


def work(value: Any, state: State) -> Any:
    if not isinstance(value, dict) or any(field not in value for field in REQUIRED):
        return None
    state.set("count", state.get("count", 0) + 1)
    seen: list[str] = state.get("seen", [])
    if value["id"] in seen:
        return None
    state.set("seen", [*seen, value["id"]][-SEEN_KEPT:])
    kind = value["type"]
    if kind.startswith("order."):
        data = value.get("data") or {}
        state.set(f"order:{data.get('order_id')}", kind.split(".", 1)[1])
        if kind == "order.placed":
            return {"order_id": data.get("order_id"), "customer_id": data.get("customer_id")}
    return None


def main() -> None:
    bootstrap, group, output, state_dir, *inputs = sys.argv[1:]
    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        processing_guarantee="exactly-once",
        commit_interval=float(os.environ.get("QUIX_COMMIT_INTERVAL_S", "1.0")),
        state_dir=state_dir,
        loglevel="WARNING",
    )
    out = app.topic(output, value_serializer="json")
    for name in inputs:
        sdf = app.dataframe(app.topic(name, value_deserializer="json"))
        sdf = sdf.apply(work, stateful=True).filter(lambda v: v is not None)
        sdf.to_topic(out)
    app.run()


if __name__ == "__main__":
    main()
