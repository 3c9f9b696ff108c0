"""The contract as published artefacts, generated from its one definition (``shared.contract``):

- ``docs/contract/schemas/*.json``: JSON Schema of the CloudEvents envelope proact requires, of
  every event type's ``data``, and of a decision-log record;
- ``docs/contract/asyncapi.json``: one AsyncAPI 3.0 document for all of proact's topics, with
  every service's inputs and outputs as operations;
- ``docs/events.md``: the reference page a shop's developers integrate against: per event type,
  its topic, a field table and a complete CloudEvent.

``python -m shared.contract reference`` (``make contract``) writes them; ``--check`` exits 1 when a
committed file differs from what the code says (a unit test runs the same comparison in CI).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from shared.contract.envelope import CONTENT_TYPE, Envelope, new_event
from shared.contract.events import EVENT_TYPES, DecisionRecord
from shared.contract.examples import example_data
from shared.contract.topics import Topics

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "docs" / "contract"
EVENTS_MD = ROOT / "docs" / "events.md"
EXAMPLE_TIME = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)  # fixed: the generated files must not change by themselves
REF = "#/components/schemas/{model}"

# who writes and who reads each topic: (topic attribute, writers, readers)
FLOWS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("customers", ("shop", "storefront"), ("engine", "dispatcher")),
    ("orders", ("shop",), ("engine",)),
    ("browsing", ("storefront", "shop"), ("engine", "storefront")),
    ("support", ("shop", "storefront"), ("engine",)),
    ("actions", ("engine",), ("dispatcher",)),
    ("actions_retry", ("dispatcher",), ("dispatcher",)),
    ("outcomes", ("dispatcher", "storefront"), ("engine", "dispatcher", "storefront")),
    ("timers", ("engine",), ("engine",)),
    ("decisions", ("engine", "storefront"), ("projector",)),
    ("engine_state", ("engine",), ("engine", "projector")),
)


def _schema(model: type[BaseModel], defs: dict[str, Any]) -> dict[str, Any]:
    """A model's schema with its nested models moved to ``defs`` (referenced as components)."""
    schema = model.model_json_schema(by_alias=True, ref_template=REF)
    defs.update(schema.pop("$defs", {}))
    return schema


def schemas() -> dict[str, dict[str, Any]]:
    """file name (without .json) -> a standalone JSON Schema (draft 2020-12)."""
    models: dict[str, type[BaseModel]] = {"envelope": Envelope, "decision": DecisionRecord}
    models |= {type_: model for type_, (_, model) in EVENT_TYPES.items()}
    out = {name: model.model_json_schema(by_alias=True) for name, model in models.items()}
    for name, schema in out.items():
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://proact.example/contract/schemas/{name}.json"
    return out


def example(type_: str) -> dict[str, Any]:
    subject = "v-1" if EVENT_TYPES[type_][0] == "browsing" else "c-1"
    data = example_data(type_, EXAMPLE_TIME, customer_id="c-1", visitor_id="v-1")
    event = new_event(type_, subject, data, source="https://shop.example/backend", time=EXAMPLE_TIME, id="evt-0001")
    return event.to_dict()


def asyncapi() -> dict[str, Any]:
    topics = Topics()
    defs: dict[str, Any] = {"CloudEvent": _schema(Envelope, {})}
    messages: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for type_, (_, model) in EVENT_TYPES.items():
        defs[model.__name__] = _schema(model, defs)
        messages[type_] = {
            "name": type_,
            "title": type_,
            "contentType": CONTENT_TYPE,
            "summary": (model.__doc__ or type_).strip().split("\n")[0],
            "payload": {
                "allOf": [
                    {"$ref": REF.format(model="CloudEvent")},
                    {
                        "type": "object",
                        "properties": {"type": {"const": type_}, "data": {"$ref": REF.format(model=model.__name__)}},
                    },
                ]
            },
            "examples": [{"name": "example", "payload": example(type_)}],
        }
    defs["DecisionRecord"] = _schema(DecisionRecord, defs)
    messages["decision"] = {
        "name": "decision",
        "contentType": "application/json",
        "payload": {"$ref": REF.format(model="DecisionRecord")},
    }
    messages["entity"] = {
        "name": "entity",
        "contentType": "application/json",
        "summary": "a changelog record: key <kind>:<id>, the entity as JSON, or a tombstone",
        "payload": {"type": ["object", "null"]},
    }
    for attribute, writers, readers in FLOWS:
        address = getattr(topics, attribute)
        carried = [t for t, (topic, _) in EVENT_TYPES.items() if topic == attribute]
        if attribute == "actions_retry":
            carried = ["action.requested"]
        names = carried or (["decision"] if attribute == "decisions" else ["entity"])
        channels[attribute] = {
            "address": address,
            "messages": {n.replace(".", "_"): {"$ref": f"#/components/messages/{n}"} for n in names},
        }
        for action, services in (("send", writers), ("receive", readers)):
            for service in services:
                operations[f"{service}.{action}.{attribute}"] = {
                    "action": action,
                    "channel": {"$ref": f"#/channels/{attribute}"},
                    "summary": f"{service} {'writes to' if action == 'send' else 'reads'} {address}",
                    "messages": [{"$ref": f"#/channels/{attribute}/messages/{n.replace('.', '_')}"} for n in names],
                }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "proact",
            "version": "1.0.0",
            "description": "Every Kafka topic proact uses, who writes and who reads it, and the events on it "
            "(CloudEvents 1.0 in structured mode; the changelog and the decision log are JSON).",
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "local": {
                "host": "127.0.0.1:9092",
                "pathname": "",
                "protocol": "kafka",
                "description": "the local broker of make run",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": defs},
    }


def _type(prop: dict[str, Any]) -> str:
    """A JSON Schema property in a few words: ``string (date-time)``, ``Money or null``…"""
    if "$ref" in prop:
        return str(prop["$ref"]).rsplit("/", 1)[-1]
    if "anyOf" in prop:
        kinds = [_type(p) for p in prop["anyOf"] if p.get("type") != "null"]
        nullable = any(p.get("type") == "null" for p in prop["anyOf"])
        return " or ".join(kinds) + (" or null" if nullable else "")
    if "const" in prop:
        return json.dumps(prop["const"])
    if "enum" in prop:
        return " / ".join(json.dumps(v) for v in prop["enum"])
    kind = str(prop.get("type", "any"))
    if kind == "array":
        return f"array of {_type(prop.get('items', {}))}"
    bounds = [
        f"{k} {prop[k]}"
        for k in ("format", "pattern", "maxLength", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")
        if k in prop
    ]
    return f"{kind} ({', '.join(bounds)})" if bounds else kind


def _fields(model: type[BaseModel]) -> Iterable[str]:
    schema = model.model_json_schema(by_alias=True)
    required = set(schema.get("required", []))
    for name, prop in schema.get("properties", {}).items():
        meaning = str(prop.get("description", "")).replace("|", "/")
        kind = _type(prop).replace("|", "/")
        yield f"| `{name}` | {kind} | {'yes' if name in required else ''} | {meaning} |"


def events_md() -> str:
    topics = Topics()
    lines = [
        "# Events: the contract",
        "",
        "<!-- generated by `make contract` (shared/contract/reference.py): edit the models, not this page -->",
        "",
        "Every event proact reads or writes is a [CloudEvent 1.0](https://cloudevents.io) on Kafka, in",
        "structured mode (`content-type: application/cloudevents+json`; binary mode with `ce_*` headers",
        "is read too), keyed by its `subject`: the customer id, or the visitor id for browsing events.",
        "Unknown fields in `data` are kept; a missing required field, a wrong type or an absurd value",
        "(a time outside the window, a non-finite number) sends the event to `<topic>.dlq` with the field",
        "named ([architecture.md](architecture.md#failure-model)). Machine-readable: the JSON Schemas in",
        "[contract/schemas/](contract/schemas/envelope.json) and one AsyncAPI 3.0 document for every topic,",
        "[contract/asyncapi.json](contract/asyncapi.json).",
        "",
        "## The envelope",
        "",
        "| field | type | required | meaning |",
        "|---|---|---|---|",
        *_fields(Envelope),
        "",
        "`time` must lie between 2000-01-01 and a day ahead of the receiving clock; dates inside `data`",
        "up to three years ahead (settings: `PROACT_EVENT_TIME_AHEAD_S`, `PROACT_EVENT_DATA_AHEAD_DAYS`,",
        "`PROACT_EVENT_TIME_EARLIEST`).",
        "",
    ]
    for type_, (attribute, model) in EVENT_TYPES.items():
        lines += [
            f"## `{type_}`",
            "",
            f"Topic `{getattr(topics, attribute)}`.",
            "",
            "| field of `data` | type | required | meaning |",
            "|---|---|---|---|",
            *_fields(model),
            "",
            "```json",
            json.dumps(example(type_), indent=2, ensure_ascii=False),
            "```",
            "",
        ]
    lines += [
        "## The decision log (`proact.engine.decisions`)",
        "",
        "Not a CloudEvent: a JSON object per decision, keyed by the customer (or visitor) id.",
        "",
        "| field | type | required | meaning |",
        "|---|---|---|---|",
        *_fields(DecisionRecord),
        "",
    ]
    return "\n".join(line.rstrip() for line in lines)


def files() -> dict[Path, str]:
    out = {
        OUT / "schemas" / f"{name}.json": json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
        for name, schema in schemas().items()
    }
    out[OUT / "asyncapi.json"] = json.dumps(asyncapi(), indent=2, ensure_ascii=False) + "\n"
    out[EVENTS_MD] = events_md()
    return out


def stale() -> list[Path]:
    """The generated files whose committed text differs from what the code says (or that are missing)."""
    return [p for p, text in files().items() if not p.is_file() or p.read_text() != text]


def main(argv: list[str]) -> int:
    if "--check" in argv:
        behind = stale()
        for path in behind:
            print(f"stale: {path.relative_to(ROOT)} (run make contract)", file=sys.stderr)
        return 1 if behind else 0
    for path, text in files().items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    print(f"wrote {len(files())} files under docs/")
    return 0
