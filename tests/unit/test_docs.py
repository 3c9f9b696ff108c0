"""The house's documents: a short README, and every link in it and in the docs resolves to a file
in the repository (no reference to a document a clone does not contain)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def documents() -> list[Path]:
    tracked = subprocess.run(["git", "ls-files", "*.md"], cwd=ROOT, capture_output=True, text=True, check=True)
    return [ROOT / line for line in tracked.stdout.splitlines()]


def test_the_readme_is_short() -> None:
    assert len((ROOT / "README.md").read_text().splitlines()) <= 200


def test_every_link_in_the_documents_resolves_to_a_file_in_the_repository() -> None:
    broken = []
    for doc in documents():
        for target in LINK.findall(doc.read_text()):
            if re.match(r"^[a-z]+:", target) or target.startswith("#"):
                continue  # a web address, or an anchor in the same page
            path = (doc.parent / target.split("#", 1)[0]).resolve()
            if not path.exists() or ROOT not in path.parents:
                broken.append(f"{doc.relative_to(ROOT)} -> {target}")
    assert broken == []


def test_nothing_cites_a_design_document_the_repository_lacks() -> None:
    tracked = subprocess.run(["git", "grep", "-l", "DESIGN.md"], cwd=ROOT, capture_output=True, text=True)
    assert tracked.stdout.split() == ["tests/unit/test_docs.py"]


def test_the_shop_guide_has_a_valid_request_for_every_back_end_event_type() -> None:
    """docs/connect-your-shop.md: one curl example per event type a shop sends over HTTP, each a
    CloudEvent the contract accepts (an example that drifts from the contract fails here)."""
    import json
    import re

    from shared.contract import EVENT_TYPES
    from shared.contract.envelope import from_dict

    guide = (ROOT / "docs" / "connect-your-shop.md").read_text()
    bodies = re.findall(r"<<'JSON'\n(.*?)\nJSON\n", guide, re.S)
    types = {from_dict(json.loads(body)).type for body in bodies}
    wanted = {t for t, (topic, _) in EVENT_TYPES.items() if topic in ("customers", "orders", "support")}
    assert types == wanted
