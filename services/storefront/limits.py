"""A per-key sliding-window rate limit, in memory (per replica: a shop's traffic is spread over
replicas, so the effective limit is the configured one times the replicas, an accepted slack)."""

from __future__ import annotations

import time
from collections import OrderedDict, deque


class RateLimit:
    def __init__(self, limit: int, window_s: float, max_keys: int = 100_000) -> None:
        self.limit = limit
        self.window_s = window_s
        self.max_keys = max_keys
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    def allow(self, key: str, now: float | None = None) -> bool:
        """Count a request for ``key``; False when it is over the limit (the refused one is not counted)."""
        now = time.monotonic() if now is None else now
        hits = self._hits.get(key)
        if hits is None:
            hits = self._hits[key] = deque()
            if len(self._hits) > self.max_keys:
                self._hits.popitem(last=False)
        self._hits.move_to_end(key)
        while hits and hits[0] <= now - self.window_s:
            hits.popleft()
        if len(hits) >= self.limit:
            return False
        hits.append(now)
        return True

    def retry_after(self, key: str, now: float | None = None) -> int:
        now = time.monotonic() if now is None else now
        hits = self._hits.get(key)
        return max(int(hits[0] + self.window_s - now) + 1, 1) if hits else 1
