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
from specc.protocol.templates import EXTENDS, TEMPLATE

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
    # A site template is a partial protocol and a protocol may take any key from its
    # template, so no key is required of a single file; the loader checks the merged result.
    del schema["required"]
    schema["description"] = (
        "A clinical IMRT protocol or a site template (template: true). specc, name, site, version, "
        "structures and prescription are required of a protocol once templates are merged."
    )
    return schema


def protocol_json_schema_text() -> str:
    return json.dumps(protocol_json_schema(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    print(protocol_json_schema_text(), end="")
