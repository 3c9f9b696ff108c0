"""The contract as published artefacts: the committed JSON Schemas, AsyncAPI document and reference
page are what the code generates (CI fails when they are stale: ``make contract``), every example
validates against its schema, the AsyncAPI document is a valid AsyncAPI 3.0 document whose
references all resolve, and the decision records proact writes fit their published type."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from faststream.specification.asyncapi.v3_0_0.schema import ApplicationSchema
from jsonschema import Draft202012Validator

from shared.contract import EVENT_TYPES, reference
from shared.contract.events import DecisionRecord
from shared.engine.handlers import handle
from shared.engine.runner import RuleBook, RuleRunner
from shared.engine.state import PartitionState
from shared.rules import RuleSet, builtin_rules
from tests.factories import event


def test_the_committed_artefacts_are_current() -> None:
    assert [str(p.relative_to(reference.ROOT)) for p in reference.stale()] == []


@pytest.mark.parametrize("type_", sorted(EVENT_TYPES))
def test_each_example_validates_against_its_published_schemas(type_: str) -> None:
    published = {p.name: json.loads(p.read_text()) for p in (reference.OUT / "schemas").glob("*.json")}
    example = reference.example(type_)
    Draft202012Validator(published["envelope.json"]).validate(example)
    Draft202012Validator(published[f"{type_}.json"]).validate(example["data"])


def test_a_schema_refuses_what_the_contract_refuses() -> None:
    schema = json.loads((reference.OUT / "schemas" / "order.placed.json").read_text())
    data = reference.example("order.placed")["data"]
    assert not Draft202012Validator(schema).is_valid({**data, "order_id": "o" * 10_000})
    assert not Draft202012Validator(schema).is_valid({k: v for k, v in data.items() if k != "customer_id"})


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return ([node["$ref"]] if isinstance(node.get("$ref"), str) else []) + [
            r for v in node.values() for r in _refs(v)
        ]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_the_asyncapi_document_is_valid_and_its_references_resolve() -> None:
    document = json.loads((reference.OUT / "asyncapi.json").read_text())
    ApplicationSchema.model_validate(document)  # FastStream's model of the AsyncAPI 3.0 specification
    for ref in _refs(document):
        node: Any = document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]
    readers = {op.split(".")[0] for op, spec in document["operations"].items() if spec["action"] == "receive"}
    assert readers == {"engine", "dispatcher", "storefront", "projector"}  # every service's inputs, not one's


def test_the_decision_records_the_engine_writes_fit_their_published_type() -> None:
    state = PartitionState(0)
    runner = RuleRunner(RuleBook(RuleSet(builtin_rules())))
    now = datetime.now(UTC)
    handle(state, event("customer.upserted", subject="c-1", consents={"email": True}), now, rules=runner)
    handle(state, event("order.eta_changed", subject="c-1", estimated_delivery=now.isoformat()), now, rules=runner)
    handle(state, event("order.placed", subject="c-1", promised_delivery_by=now.isoformat()), now, rules=runner)
    later = now.replace(year=now.year + 1).isoformat()
    handle(state, event("order.eta_changed", subject="c-1", estimated_delivery=later), now, rules=runner)
    decisions = state.take_decisions()
    assert decisions
    for record in decisions:
        DecisionRecord.model_validate(record)
