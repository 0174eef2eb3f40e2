"""Every protocol file shipped under protocols/ passes the JSON Schema editors use and the loader.

Found by glob, so a protocol added later is covered without touching this file. The schema
is what an editor checks while a physicist types; the loader is what planning trusts. A
file that passes one and fails the other means the schema and the models disagree.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator

from specc.protocol import load_protocol_or_template

ROOT = Path(__file__).parent.parent
PROTOCOLS = sorted((ROOT / "protocols").rglob("*.yaml"))
SCHEMA = json.loads((ROOT / "schemas" / "protocol.schema.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def validator() -> Draft202012Validator:
    Draft202012Validator.check_schema(SCHEMA)
    return Draft202012Validator(SCHEMA, format_checker=Draft202012Validator.FORMAT_CHECKER)


def test_there_are_protocols_to_check() -> None:
    assert len(PROTOCOLS) >= 2


@pytest.mark.parametrize("path", PROTOCOLS, ids=[str(path.relative_to(ROOT)) for path in PROTOCOLS])
def test_shipped_protocol_passes_schema_and_loader(path: Path, validator: Draft202012Validator) -> None:
    # As an editor's YAML 1.2 reader sees it: a date such as 2024-05-01 is text.
    document = json.loads(json.dumps(yaml.safe_load(path.read_text(encoding="utf-8")), default=str))
    problems = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(document)]
    assert problems == [], f"{path} does not match schemas/protocol.schema.json"
    load_protocol_or_template(path, root=ROOT / "protocols")


def test_schema_rejects_what_the_loader_rejects(validator: Draft202012Validator) -> None:
    """The check above can fail: the schema knows the keys and kinds the loader knows."""
    document = yaml.safe_load((ROOT / "protocols" / "examples" / "prostate-sib.yaml").read_text(encoding="utf-8"))
    document["prescription"]["fractons"] = document["prescription"].pop("fractions")
    document["template"] = "yes"
    document["optimization"]["terms"][0]["kind"] = "max_dos"
    found = {(".".join(map(str, error.absolute_path)), error.validator) for error in validator.iter_errors(document)}
    assert found == {
        ("template", "type"),
        ("prescription", "additionalProperties"),
        ("prescription", "required"),
        ("optimization", "anyOf"),  # the unknown kind matches no term (nor null)
    }
