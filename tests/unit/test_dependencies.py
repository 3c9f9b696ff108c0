"""Every third-party module the code imports is declared in pyproject.toml, in the group that installs
it where the code runs: services and shared code in the runtime dependencies (matplotlib, imported only
by the model report, in the ``trainer`` extra), benchmarks in ``bench``, tests in ``dev``. A module that
arrives only with another package would vanish from an install the day that package drops it."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OWN = {"shared", "services", "tests", "bench", "deploy"}
PEERS = ROOT / "bench" / "peers"  # the benchmark's peers, installed from their own pinned requirements


def _name(requirement: str) -> str:
    return re.split(r"[\[<>=!~; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _groups() -> dict[str, set[str]]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {"runtime": {_name(r) for r in project["dependencies"]}}
    for extra, requirements in project["optional-dependencies"].items():
        groups[extra] = {_name(r) for r in requirements if not r.startswith("proact[")}
    return groups


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return {m for m in found if m not in sys.stdlib_module_names and m not in OWN and m != "__future__"}


def _undeclared(folders: list[str], allowed: set[str]) -> dict[str, list[str]]:
    distributions = packages_distributions()
    missing: dict[str, list[str]] = {}
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")):
            if PEERS in path.parents:
                continue  # an environment of their own (test_the_benchmark_peer_imports_what_its_pins_install)
            siblings = {p.stem for p in path.parent.glob("*.py")}  # scripts import their neighbours
            for module in _imports(path) - siblings:
                names = {d.lower().replace("_", "-") for d in distributions.get(module, [])}
                if not names & allowed:
                    missing.setdefault(f"{module} ({', '.join(sorted(names)) or 'not installed'})", []).append(
                        str(path.relative_to(ROOT))
                    )
    return missing


@pytest.mark.parametrize(
    ("folders", "groups"),
    [
        (["services", "shared"], ["runtime", "trainer"]),
        (["deploy"], ["runtime", "demo"]),
        (["bench"], ["runtime", "bench", "dev"]),
        (["tests"], ["runtime", "trainer", "demo", "bench", "dev"]),
    ],
)
def test_every_import_is_declared_where_it_runs(folders: list[str], groups: list[str]) -> None:
    declared = _groups()
    allowed = set().union(*(declared[g] for g in groups))
    assert _undeclared(folders, allowed) == {}


def test_the_benchmark_peer_imports_what_its_pins_install() -> None:
    """The Quix Streams peer runs in an environment of its own (bench/engine.py, ``peer_python``),
    installed from ``quix-requirements.txt`` with hashes: what it imports is pinned there."""
    pinned = {
        _name(line)
        for line in (PEERS / "quix-requirements.txt").read_text().splitlines()
        if line and not line.startswith((" ", "#"))
    }
    assert "quixstreams" in pinned
    for path in PEERS.glob("*.py"):
        assert {m.replace("_", "-") for m in _imports(path)} <= pinned, path
    hashed = (PEERS / "quix-requirements.txt").read_text()
    assert hashed.count("--hash=sha256:") >= len(pinned)  # every pin carries its hashes


def test_matplotlib_stays_out_of_the_services() -> None:
    """The service image leaves the trainer extra out: only the model report may import matplotlib."""
    users = [
        str(p.relative_to(ROOT))
        for folder in ("services", "shared")
        for p in (ROOT / folder).rglob("*.py")
        if "matplotlib" in _imports(p)
    ]
    assert users == ["shared/models/evaluation.py"]
    assert "matplotlib" not in _groups()["runtime"]


def test_the_lock_covers_every_supported_python() -> None:
    lock = tomllib.loads((ROOT / "uv.lock").read_text())
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert lock["requires-python"].replace(" ", "") == project["requires-python"].replace(" ", "")
    compiled = {p["name"]: p for p in lock["package"] if p["name"] in {"common-expression-language", "scikit-learn"}}
    for name, package in compiled.items():
        tags = {w["url"].rsplit("/", 1)[-1].split("-")[-3] for w in package.get("wheels", [])}
        assert {"cp311", "cp312", "cp313"} <= tags, (name, tags)
