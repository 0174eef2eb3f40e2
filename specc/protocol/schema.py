"""The JSON Schema of protocol files, generated from the models.

Editors use it through the `# yaml-language-server: $schema=...` comment of a protocol.
`schemas/protocol.schema.json` is this module's output (a test fails when it is stale);
regenerate it with `python -m specc.protocol.schema > schemas/protocol.schema.json`
or `specc schema --out schemas/protocol.schema.json`.
"""

from __future__ import annotations

import json
from typing import Any

from specc.protocol.models import Protocol
from specc.protocol.templates import EXTENDS, OWN_KEYS, TEMPLATE

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def protocol_json_schema() -> dict[str, Any]:
    schema = Protocol.model_json_schema()
    schema["$schema"] = SCHEMA_DIALECT
    schema["title"] = "specc protocol"
    # `extends` and `template` are read by the loader before validation (they choose what
    # the rest is validated as), so the models do not hold them.
    schema["properties"] = {
        EXTENDS: {
            "type": "string",
            "description": "Template this protocol builds on, relative to this file (e.g. base-pelvis.yaml).",
        },
        TEMPLATE: {
            "type": "boolean",
            "default": False,
            "description": "true: a site template, a partial protocol that other protocols extend; "
            "checked on its own but never planned. Not inherited by the protocols extending it.",
        },
        **schema["properties"],
    }
    required = schema.pop("required")
    _optional_where_merged(schema)
    schema["allOf"] = _required_by_file(required)
    schema["description"] = (
        f"A clinical IMRT protocol or a site template (template: true). {', '.join(required)} are required of a "
        f"protocol once templates are merged; {' and '.join(_own_required(required))} of every protocol file, even "
        "one that extends a template (they are not inherited), and all of them of a protocol that extends none. "
        "A site template requires none."
    )
    return schema


def _own_required(required: list[str]) -> list[str]:
    """The required keys each protocol file states for itself (`OWN_KEYS`: never taken from a template)."""
    return [key for key in required if key in OWN_KEYS]


def _required_by_file(required: list[str]) -> list[dict[str, Any]]:
    """What a single file must state, by what it is: a site template (`template: true`) nothing, being partial;
    a protocol its own keys (name, version), for a template's are not inherited, and, where it extends no
    template, every key a protocol requires: nothing is merged into it. So an editor flags a protocol saved
    without its version (which `specc plan --watch` then refuses) while every file `specc validate` accepts passes."""
    template = {"properties": {TEMPLATE: {"const": True}}, "required": [TEMPLATE]}
    return [
        {"if": template, "else": {"required": _own_required(required)}},
        {"if": {"anyOf": [template, {"required": [EXTENDS]}]},
         "else": {"required": [key for key in required if key not in OWN_KEYS]}},
    ]


def _optional_where_merged(schema: dict[str, Any]) -> None:
    """No key required, nor a mapping's size, where a file's mapping is merged key by key with its template's.

    A protocol extending a template may write one key of a template structure (`SpinalCord: {color: ...}`,
    the documented override) or of its prescription; the editor flagged it ("'role' is a required property")
    where `specc validate` accepts it. A mapping is merged key by key down from the top of the file, except
    under goals (a goal is matched as a whole) and in the keys each file states for itself (`approval`); a
    list is replaced whole, so what lies in one (a dose level, a term) keeps its required keys. The
    description says which keys the merged protocol needs."""
    definitions = schema["$defs"]
    relaxed: set[str] = set()

    def visit(node: Any) -> None:
        if not isinstance(node, dict):
            return
        node.pop("minProperties", None)
        name = node.get("$ref", "").rpartition("/")[2]
        if name and name not in relaxed:
            relaxed.add(name)
            definition = definitions[name]
            required = definition.pop("required", None)
            if required:
                said = definition.get("description", "").strip()
                definition["description"] = (
                    f"{said}{' ' if said else ''}Required once templates are merged: {', '.join(required)} "
                    "(a protocol may take them from its template)."
                )
            visit(definition)
        for member in [*node.get("anyOf", []), *node.get("oneOf", []), *node.get("allOf", [])]:
            visit(member)
        for value in node.get("properties", {}).values():
            visit(value)
        visit(node.get("additionalProperties"))

    for key, value in schema["properties"].items():
        if key not in ("goals", *OWN_KEYS):
            visit(value)


def protocol_json_schema_text() -> str:
    return json.dumps(protocol_json_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(protocol_json_schema_text(), end="")
