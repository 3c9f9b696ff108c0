"""Which core runs what during a benchmark: the system measured on a core of its own, everything
else (Kafka, FerretDB, the load generators, the benchmark itself) on the other, as separate
machines or pods would have it. On a 2-core machine left to the scheduler, the broker's work and
the measured process's share both cores, and a figure then says as much about where the scheduler
put them as about the code.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from shared.settings import cache_dir

MEASURED = {1}  # the core of the system being measured
THE_REST = {0}


def pin(pids: Iterable[int], cores: set[int]) -> None:
    """Move processes (and all their threads) to these cores; a process gone meanwhile is skipped."""
    for pid in pids:
        try:
            tasks = list(Path(f"/proc/{pid}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                os.sched_setaffinity(int(task.name), cores)
            except OSError:
                pass


def infra_pids() -> dict[str, int]:
    """Kafka's and FerretDB's process ids, from the PID files ``make infra-up`` writes."""
    run_dir = cache_dir() / "run"
    return {
        name: int(pid_file.read_text())
        for name in ("kafka", "ferretdb")
        if (pid_file := run_dir / f"{name}.pid").exists()
    }


def can_pin() -> bool:
    return (os.cpu_count() or 1) >= 2


@contextmanager
def own_core(measured: Iterable[int], others: Iterable[int] = ()) -> Iterator[bool]:
    """``measured`` on core 1; Kafka, FerretDB, this process and ``others`` on core 0; all of them
    back on every core afterwards. Yields whether it could (a machine with two cores or more)."""
    measured = set(measured)
    rest = (set(infra_pids().values()) | {os.getpid()} | set(others)) - measured
    if not can_pin():
        yield False
        return
    pin(rest, THE_REST)
    pin(measured, MEASURED)
    try:
        yield True
    finally:
        every = set(range(os.cpu_count() or 1))
        pin(rest | measured, every)
