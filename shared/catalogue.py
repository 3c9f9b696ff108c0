"""The catalogue of proact's long-running services: one place that says which processes there are,
how each is started, on which port it answers and where its health is.

Everything that starts the services reads it: the local scripts (``deploy/local/services.sh``
through ``python -m shared.catalogue``), the end-to-end tests (``tests/e2e/stack.py``), the
benchmarks and the container image's comment. The trainer is a command, not a service: not here.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class Service:
    name: str
    module: str  # python -m <module>
    port: int  # the default HTTP port (health, metrics, and the API where there is one)
    port_env: str  # the variable that moves it
    health: str = "/health/live"
    ready: str = "/health/ready"


SERVICES: tuple[Service, ...] = (
    Service("engine", "services.engine", 8081, "PROACT_ENGINE_HTTP_PORT"),
    Service("projector", "services.projector", 8083, "PROACT_PROJECTOR_HTTP_PORT"),
    Service("dispatcher", "services.dispatcher", 8082, "PROACT_DISPATCHER_HTTP_PORT"),
    Service("storefront", "services.storefront", 8080, "PROACT_STOREFRONT_HTTP_PORT"),
    Service("admin", "services.admin", 8090, "PROACT_ADMIN_HTTP_PORT"),
)
BY_NAME = {s.name: s for s in SERVICES}


def main(argv: list[str]) -> int:
    """``python -m shared.catalogue``: one line per service, ``name module port_env port health``
    (for shell scripts)."""
    names = argv or [s.name for s in SERVICES]
    unknown = [n for n in names if n not in BY_NAME]
    if unknown:
        print(f"unknown service {', '.join(unknown)}; known: {', '.join(BY_NAME)}", file=sys.stderr)
        return 2
    for name in names:
        s = BY_NAME[name]
        print(s.name, s.module, s.port_env, s.port, s.health)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
