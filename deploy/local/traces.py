"""Print the last journeys recorded by ``make run`` as readable trace trees.

    python deploy/local/traces.py [--last 5] [--with NAME]   (``make traces``)

Reads the JSON-lines span files the services write when ``PROACT_TRACES_FILE`` is set (``make run``
sets one per service in the cache's log folder) and prints, for the most recent traces that contain
a span whose name starts with ``--with`` (default ``send ``: journeys that reached a channel), each span
indented under its parent, with its service and duration.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson

from shared.settings import Settings, cache_dir


def load(folder: Path) -> dict[str, list[dict[str, Any]]]:
    traces: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for path in sorted(folder.glob("traces-*.jsonl")):
        for line in path.read_bytes().splitlines():
            if line.strip():
                span = orjson.loads(line)
                traces[span["trace_id"]].append(span)
    return traces


def render(spans: list[dict[str, Any]]) -> list[str]:
    by_id = {s["span_id"]: s for s in spans}
    children: dict[str | None, list[dict[str, Any]]] = defaultdict(list)
    for s in spans:
        parent = s["parent_id"] if s["parent_id"] in by_id else None
        children[parent].append(s)
    t0 = min(s["start"] for s in spans)
    lines: list[str] = []

    def walk(span: dict[str, Any], depth: int) -> None:
        offset = (span["start"] - t0) / 1e6
        took = (span["end"] - span["start"]) / 1e6
        flag = "" if span["status"] != "ERROR" else "  ERROR"
        lines.append(f"{'  ' * depth}{span['name']}  [{span['service']}]  +{offset:,.1f} ms, {took:,.1f} ms{flag}")
        for child in sorted(children[span["span_id"]], key=lambda s: s["start"]):
            walk(child, depth + 1)

    for root in sorted(children[None], key=lambda s: s["start"]):
        walk(root, 0)
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--last", type=int, default=5)
    parser.add_argument("--with", dest="prefix", default="send ", help="a span name that starts like this")
    parser.add_argument("--folder", type=Path, default=None)
    args = parser.parse_args()
    folder = args.folder or (Settings().traces_file.parent if Settings().traces_file else None)
    if folder is None:
        folder = cache_dir() / "logs"
    traces = load(folder)
    chosen = [spans for spans in traces.values() if any(s["name"].startswith(args.prefix) for s in spans)]
    chosen.sort(key=lambda spans: max(s["end"] for s in spans))
    if not chosen:
        print(f"no trace with a span named {args.prefix!r}… in {folder}", file=sys.stderr)
        return 1
    for spans in chosen[-args.last :]:
        print(f"trace {spans[0]['trace_id']}  ({len(spans)} spans)")
        for line in render(spans):
            print("  " + line)
        print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
