"""The engine: consumes the shop's events, keeps partition-owned state and timers, and requests actions."""
