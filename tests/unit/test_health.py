"""Readiness tells a reachable broker from an unreachable one."""

from __future__ import annotations

import asyncio

from shared.health import kafka_reachable


async def test_a_listening_broker_is_reachable_and_a_closed_port_is_not() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        assert await kafka_reachable(f"127.0.0.1:{port}") is True
        assert await kafka_reachable(f"127.0.0.1:1,127.0.0.1:{port}") is True  # any one broker will do
    finally:
        server.close()
        await server.wait_closed()
    assert await kafka_reachable(f"127.0.0.1:{port}", timeout_s=0.5) is False
