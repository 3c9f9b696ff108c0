"""The results table in ``bench/README.md``, kept by the benchmarks themselves.

Each benchmark ends with :func:`record`: its headline figures go to ``bench/results/<name>.json``
(with the date and the machine's size) and the table between ``bench/README.md``'s ``results``
markers is written again from every file there, so ``make bench`` and ``make chaos`` leave it
current. The top-level README keeps a short table of headline figures, edited by hand.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
README = ROOT / "bench" / "README.md"
BEGIN, END = "<!-- results:begin (written by bench/report.py) -->", "<!-- results:end -->"
ORDER = ["engine", "takeover", "decide", "rules", "models", "intent-live", "load", "load-pinned", "chaos", "state"]


def machine() -> str:
    memory = ""
    try:
        kb = int(
            next(
                line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")
            ).split()[1]
        )
        memory = f", {kb / 1024 / 1024:.0f} GB"
    except (OSError, StopIteration, ValueError):
        pass
    return f"{os.cpu_count()} cores{memory}"


def record(name: str, command: str, figures: list[tuple[str, str, str]]) -> None:
    """``figures``: (measure, result, target or ""), in the order to show them."""
    RESULTS.mkdir(exist_ok=True)
    entry = {
        "name": name,
        "command": command,
        "date": f"{datetime.now(UTC):%Y-%m-%d}",
        "machine": machine(),
        "figures": [list(f) for f in figures],
    }
    (RESULTS / f"{name}.json").write_text(json.dumps(entry, indent=2, ensure_ascii=False) + "\n")
    render()


def render() -> None:
    entries = []
    for path in RESULTS.glob("*.json"):
        entry = json.loads(path.read_text())
        if "figures" in entry:
            entries.append(entry)
    entries.sort(key=lambda e: ORDER.index(e["name"]) if e["name"] in ORDER else len(ORDER))
    lines = ["| benchmark | measure | result | target |", "|---|---|---|---|"]
    for entry in entries:
        first = f"`{entry['command']}` ({entry['date']}, {entry['machine']})"
        for i, (measure, result, target) in enumerate(entry["figures"]):
            lines.append(f"| {first if i == 0 else ''} | {measure} | {result} | {target} |")
    text = README.read_text()
    if BEGIN not in text or END not in text:
        return
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    README.write_text(f"{head}{BEGIN}\n{chr(10).join(lines)}\n{END}{tail}")
