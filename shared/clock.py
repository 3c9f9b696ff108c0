"""The one source of "now" for domain code, so tests can run deadlines of seconds or move time by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class ManualClock:
    """A clock that only moves when told to; for unit tests of deadlines and quiet hours."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("ManualClock needs a timezone-aware start")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        self._now += delta
        return self._now


class ShiftedClock:
    """The system clock moved by an offset that can grow: real time passes, and a test can also jump
    ahead (a night of quiet hours) without waiting."""

    def __init__(self) -> None:
        self._offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset

    def advance(self, delta: timedelta) -> datetime:
        self._offset += delta
        return self.now()


# The latest instant a computed time may take. Far beyond any real deadline, and far enough from
# ``datetime.max`` that a later ``+ timedelta`` of a guard or a back-off cannot overflow either.
LATEST = datetime(9000, 1, 1, tzinfo=UTC)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)


def shifted(at: datetime, delta: timedelta) -> datetime:
    """``at + delta`` kept within [EARLIEST, LATEST]: arithmetic on a time taken from an event never
    raises ``OverflowError``, whatever the event said (the contract refuses absurd times too, but a
    rule's delay of years on a date near the edge is still arithmetic on user input)."""
    try:
        result = at + delta
    except OverflowError:
        return LATEST if delta > timedelta(0) else EARLIEST
    return min(max(result, EARLIEST), LATEST)
