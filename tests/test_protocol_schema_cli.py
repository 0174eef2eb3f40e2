"""The committed JSON Schema is current, and `specc validate` / `specc schema` behave."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from pydantic import ValidationError
from typer.testing import CliRunner

import specc.cli.validate  # noqa: F401  (registers the commands)
from specc.cli.app import app
from specc.errors import SpeccError
from specc.protocol import Dose, Protocol, ProtocolError, load_protocol_or_template
from specc.protocol.diagnostics import Diagnostic, format_loc
from specc.protocol.schema import protocol_json_schema, protocol_json_schema_text

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "protocols" / "examples"
BROKEN = ROOT / "tests" / "data" / "broken_protocols"
runner = CliRunner()


def test_committed_schema_is_current() -> None:
    committed = (ROOT / "schemas" / "protocol.schema.json").read_text(encoding="utf-8")
    assert committed == protocol_json_schema_text(), (
        "schemas/protocol.schema.json is stale: python -m specc.protocol.schema > schemas/protocol.schema.json"
    )


def test_schema_describes_the_document() -> None:
    schema = protocol_json_schema()
    assert {"extends", "template", "specc", "prescription", "goals", "optimization"} <= set(schema["properties"])
    assert schema["properties"]["template"]["type"] == "boolean"
    assert "source" not in schema["properties"]
    assert schema["$defs"]["StructureSpec"]["additionalProperties"] is False
    kinds = json.dumps(schema["$defs"]["Optimization"])
    assert "max_dose" in kinds or "MaxDose" in kinds


def test_shipped_protocols_name_the_schema() -> None:
    for path in EXAMPLES.glob("*.yaml"):
        assert "# yaml-language-server: $schema=../../schemas/protocol.schema.json" in path.read_text(), path


def test_validate_ok_and_errors() -> None:
    ok = runner.invoke(app, ["validate", str(EXAMPLES / "lung-60-in-30.yaml")])
    assert ok.exit_code == 0 and ok.output.strip() == f"OK {EXAMPLES / 'lung-60-in-30.yaml'}"
    bad = runner.invoke(app, ["validate", str(EXAMPLES / "prostate-sib.yaml"), str(BROKEN / "bad-metric.yaml")])
    assert bad.exit_code == 1
    assert f"{BROKEN / 'bad-metric.yaml'}:19:7: goals.Rectum[0]: unknown metric \"V70\" (did you mean \"V70Gy\"?)" in bad.output
    assert "Traceback" not in bad.output


def test_validate_a_template_library() -> None:
    files = sorted(EXAMPLES.glob("*.yaml"))
    result = runner.invoke(app, ["validate", *map(str, files)])
    assert result.exit_code == 0, result.output
    templates = {"base-head-neck.yaml", "base-pelvis.yaml", "base-thorax.yaml"}
    lines = result.output.splitlines()
    assert [line for line in lines if not line.startswith(("  warning: ", "  note: "))] == [
        f"OK {path}" + (" (template)" if path.name in templates else "") for path in files
    ]
    # the lung SBRT limits by PTV volume (D2cm, R50, V105% outside the PTV): no number in the file, one per case
    noted = [line for line in lines if line.startswith("  note: ")]
    assert len(noted) == 3 and all("lung-sbrt-54-in-3.yaml" in line and "read on each case" in line for line in noted)
    assert len(files) == 8
    # the two prostate protocols accept their template's rectum V70Gy limit with an acceptable variation: said
    warned = [line for line in lines if line.startswith("  warning: ")]
    assert [line.split(": ")[1].rsplit("/", 1)[1] for line in warned] == [
        "prostate-boost-after-pelvis.yaml:62:7", "prostate-sib.yaml:67:7"
    ]
    assert all("an acceptable variation added (25%)" in line for line in warned)


def test_validate_missing_file() -> None:
    text = runner.invoke(app, ["validate", "nope.yaml"])
    assert text.exit_code == 1 and text.output.strip() == "nope.yaml: protocol file not found"
    as_json = runner.invoke(app, ["validate", "--format", "json", "nope.yaml"])
    assert json.loads(as_json.stdout) == [
        {"file": "nope.yaml", "line": None, "column": None, "path": "", "message": "protocol file not found",
         "severity": "error"}
    ]


def test_validate_json() -> None:
    result = runner.invoke(app, ["validate", "--format", "json", str(BROKEN / "unknown-key.yaml")])
    assert result.exit_code == 1
    diagnostics = json.loads(result.stdout)
    assert [(d["line"], d["column"], d["path"]) for d in diagnostics] == [(12, 3, "prescription.fractons")]
    assert set(diagnostics[0]) == {"file", "line", "column", "path", "message", "severity"}


def test_schema_command(tmp_path: Path) -> None:
    printed = runner.invoke(app, ["schema"])
    assert printed.exit_code == 0 and json.loads(printed.stdout) == protocol_json_schema()
    out = tmp_path / "schema.json"
    assert runner.invoke(app, ["schema", "--out", str(out)]).exit_code == 0
    assert out.read_text(encoding="utf-8") == protocol_json_schema_text()


def test_validate_json_lists_the_notes_the_text_prints() -> None:
    # a limit by the PTV's volume has no number in the file: the json a script or an editor reads says so at its
    # line, as the text output does (it did not: only errors and warnings reached the json)
    sbrt = Path("protocols/examples/lung-sbrt-54-in-3.yaml")
    result = runner.invoke(app, ["validate", "--format", "json", str(sbrt)])
    assert result.exit_code == 0, result.output
    notes = [d for d in json.loads(result.stdout) if d["severity"] == "note"]
    assert len(notes) == 3
    assert all(d["file"].endswith("lung-sbrt-54-in-3.yaml") and isinstance(d["line"], int) for d in notes)
    assert all("read on each case" in d["message"] for d in notes)
    text = runner.invoke(app, ["validate", str(sbrt)]).output
    assert [line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("  note: ")] == [
        f"{d['file']}:{d['line']}:{d['column']}: {d['path']}: {d['message']}" for d in notes
    ]


TEMPLATE = "template: true\nspecc: 1\nsite: t\nstructures: {Rectum: {role: oar}}\ngoals: {Rectum: ['Mean <= 40 Gy']}\n"
PLANNED = "structures: {PTV: {role: target}}\nprescription: {fractions: 30, levels: [{target: PTV, dose: 60 Gy}]}\n"
STANDALONE = "specc: 1\nname: Alone\nsite: t\nversion: 1.0.0\n" + PLANNED


@pytest.mark.parametrize(
    ("name", "text", "missing"),
    [
        ("base.yaml", TEMPLATE, set()),  # a site template states neither name nor version
        ("extending.yaml", "extends: base.yaml\nname: Boost\nversion: 1.0.0\n" + PLANNED, set()),
        ("no-version.yaml", "extends: base.yaml\nname: Boost\n" + PLANNED, {"version"}),
        ("no-name.yaml", "extends: base.yaml\nversion: 1.0.0\n" + PLANNED, {"name"}),
        ("alone.yaml", STANDALONE, set()),
        ("no-prescription.yaml", STANDALONE.split("prescription")[0], {"prescription"}),
        ("goals-only.yaml", "goals: {PTV: ['D95% >= 50 Gy']}\n",
         {"specc", "name", "site", "version", "structures", "prescription"}),
    ],
)
def test_the_schema_requires_the_keys_a_file_cannot_take_from_a_template(
    tmp_path: Path, name: str, text: str, missing: set[str]
) -> None:
    """name and version of every protocol file (they are not inherited), every key of a protocol that extends no
    template, nothing of a site template: the editor flags the half-written save `specc validate` refuses (audit
    s18/a4 F4), and passes every file it accepts."""
    validator = Draft202012Validator(json.loads((ROOT / "schemas" / "protocol.schema.json").read_text(encoding="utf-8")))
    (tmp_path / "base.yaml").write_text(TEMPLATE, encoding="utf-8")
    (tmp_path / name).write_text(text, encoding="utf-8")
    errors = list(validator.iter_errors(yaml.safe_load(text)))
    assert {error.message for error in errors} == {f"'{key}' is a required property" for key in missing}
    assert all(not error.absolute_path for error in errors) and len(errors) == len(missing)  # at the top, once each
    if missing:
        with pytest.raises(SpeccError, match="missing required key"):
            load_protocol_or_template(tmp_path / name)
    else:
        load_protocol_or_template(tmp_path / name)


AGREEMENT_BASE = {
    "specc": 1, "name": "Agree", "site": "t", "version": "1.0.0",
    "structures": {"PTV": {"role": "target"}, "Core": {"role": "oar"}},
    "prescription": {"fractions": 25, "levels": [{"target": "PTV", "dose": "50 Gy"}]},
    "goals": {"PTV": ["D95% >= 47.5 Gy"], "Core": ["Mean <= 20 Gy"]},
    "optimization": {"terms": [{"kind": "quadratic_underdose", "structure": "PTV", "dose": "50 Gy", "weight": 100}]},
}


def _dvh(volume: Any) -> dict[str, Any]:
    return {"kind": "dvh", "structure": "Core", "dose": "20 Gy", "volume": volume, "bound": "upper"}


def _robust(**errors: Any) -> dict[str, Any]:
    return {"setup_error": "3 mm", **errors}


# (where, value, whether specc and the schema both accept it)
TERM, LEVEL_DOSE, ROBUSTNESS = ("optimization", "terms", 1), ("prescription", "levels", 0, "dose"), ("robustness",)
PTV_GOAL, CORE_GOAL = ("goals", "PTV", 1), ("goals", "Core", 1)
AGREEMENT = [
    pytest.param(TERM, _dvh("2 cm3"), True, id="dvh volume 2 cm3"),  # parse_volume reads cm3, ml and mL as cc
    pytest.param(TERM, _dvh("2 ml"), True, id="dvh volume 2 ml"),
    pytest.param(TERM, _dvh("2 mL"), True, id="dvh volume 2 mL"),
    pytest.param(TERM, _dvh({"value": 2, "unit": "cc"}), False, id="dvh volume mapping"),  # a file writes "2 cc"
    pytest.param(LEVEL_DOSE, {"gy": 50}, False, id="level dose mapping"),
    pytest.param(("optimization", "terms", 0, "dose"), {"gy": 52}, False, id="term dose mapping"),
    pytest.param(ROBUSTNESS, _robust(random_error=["2 mm", {"mm": 2}, "2 mm"]), False, id="random error mapping item"),
    pytest.param(("prescription", "normalization"), {"structure": "PTV", "metric": {"quantity": "Mean", "unit": "Gy"}},
                 False, id="normalization metric mapping"),
    pytest.param(LEVEL_DOSE, "+50 Gy", True, id="dose +50 Gy"),
    pytest.param(LEVEL_DOSE, "-50 Gy", False, id="dose -50 Gy"),
    pytest.param(LEVEL_DOSE, "-0 Gy", False, id="dose -0 Gy"),
    pytest.param(ROBUSTNESS, _robust(rotation_error=["1 deg", "1 deg", "2 deg"]), True, id="rotation error of three"),
    pytest.param(ROBUSTNESS, {"setup_error": ["3 mm", "3 mm"]}, False, id="setup error of two"),
    pytest.param(ROBUSTNESS, _robust(random_error=["2 mm", "2 mm"]), False, id="random error of two"),
    pytest.param(ROBUSTNESS, _robust(rotation_error=["1 deg", "1 deg"]), False, id="rotation error of two"),
    pytest.param(PTV_GOAL, {"metric": "D2%", "<=": "56 Gy", "variation": "58 Gy"}, True, id="dose goal with units"),
    pytest.param(PTV_GOAL, {"metric": "D2%", "<=": 56}, False, id="dose goal bare number"),
    pytest.param(PTV_GOAL, {"metric": "D2%", "<=": "56 Gy", "variation": 58}, False, id="dose goal bare variation"),
    pytest.param(CORE_GOAL, {"metric": "Max", "<": 30}, False, id="Max goal bare number"),
    # a volume metric's bare number is in its own unit, an index is a ratio
    pytest.param(CORE_GOAL, {"metric": "V20Gy[%]", "<=": 20}, True, id="volume goal bare number"),
    pytest.param(PTV_GOAL, {"metric": "CI", "<=": 1.2}, True, id="index goal bare number"),
    pytest.param(("structures", "Core", "if_contoured"), "no", False, id="if_contoured no"),
    pytest.param(("structures", "Core", "if_contoured"), 0, False, id="if_contoured 0"),
]


@pytest.mark.parametrize(("where", "value", "accepted"), AGREEMENT)
def test_the_schema_and_specc_validate_agree(tmp_path: Path, where: tuple[str | int, ...], value: Any,
                                             accepted: bool) -> None:
    """Audit s19/a3 F2, F3: an editor flagged a DVH term's "2 cm3" that `specc validate` accepts, and let through a
    setup error of two values, a negative dose and a bare number for a dose goal's limit that it refuses; specc took
    a quantity written as a mapping of its fields ({gy: 50}), which the schema and the docs know nothing of."""
    data = copy.deepcopy(AGREEMENT_BASE)
    parent: Any = data
    for key in where[:-1]:
        parent = parent.setdefault(key, {}) if isinstance(parent, dict) else parent[key]
    if isinstance(parent, list) and where[-1] == len(parent):
        parent.append(value)
    else:
        parent[where[-1]] = value
    schema = json.loads((ROOT / "schemas" / "protocol.schema.json").read_text(encoding="utf-8"))
    schema_errors = list(Draft202012Validator(schema).iter_errors(data))
    path = tmp_path / "agree.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    refused: list[Diagnostic] = []
    try:
        load_protocol_or_template(path)
    except ProtocolError as error:
        refused = error.diagnostics
    specc_accepts = not refused
    assert (not schema_errors, specc_accepts) == (accepted, accepted), [error.message for error in schema_errors]
    changed = format_loc(where)  # refused for the value this case wrote, not for another reason (review s19/r1 F9)
    assert all(found.path.startswith(changed) for found in refused), (changed, [str(found) for found in refused])


def test_a_quantity_written_as_a_mapping_is_refused_in_a_file_with_the_text_it_means(tmp_path: Path) -> None:
    """A file writes a quantity as text (audit s19/a3 F2): `dose: {gy: 50}` is refused at its line, the message
    giving the text to write; from Python the fields still build it."""
    data = copy.deepcopy(AGREEMENT_BASE)
    data["prescription"]["levels"][0]["dose"] = {"gy": 50}
    path = tmp_path / "mapping.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    with pytest.raises(ProtocolError) as caught:
        load_protocol_or_template(path)
    assert [(d.path, d.message) for d in caught.value.diagnostics] == [
        ("prescription.levels[0].dose",
         'a protocol file writes a dose as text ("50 Gy"), not as a mapping of its fields'),
    ]
    assert Protocol.model_validate(data).prescription.levels[0].dose == Dose(gy=50)
    with pytest.raises(ValidationError, match="unit\n  Extra inputs are not permitted"):
        Dose.model_validate({"gy": 50, "unit": "cGy"})  # not 50 Gy: an unknown field is refused, as in a protocol


@pytest.mark.parametrize("written", ["no", "yes", "On", "OFF"])
def test_an_unquoted_yaml_1_1_boolean_word_is_read_as_text_as_editors_read_it(tmp_path: Path, written: str) -> None:
    """`if_contoured: yes` was true to specc (PyYAML reads YAML 1.1) and text to an editor checking the schema
    (YAML 1.2), so the two disagreed on one file (review s19/r1 F7). Refusing the words everywhere (90432ec) then
    refused `site: no` or an alias `ON` (the optic nerve) that the schema accepts (review s19/r4 F3). They are read
    as text, as YAML 1.2 reads them: a flag refuses them as not true or false, a text field keeps them."""
    data = copy.deepcopy(AGREEMENT_BASE)
    data["structures"]["Core"]["if_contoured"] = "FLAG"
    text = yaml.safe_dump(data, sort_keys=False)
    path = tmp_path / "flag.yaml"
    path.write_text(text.replace("FLAG", written), encoding="utf-8")
    line = next(number for number, row in enumerate(path.read_text().splitlines(), 1) if "if_contoured" in row)
    with pytest.raises(ProtocolError) as caught:
        load_protocol_or_template(path)
    assert [(d.line, d.path, d.message) for d in caught.value.diagnostics] == [
        (line, "structures.Core.if_contoured", f'expected true or false, got "{written}"')]
    for spelled in ("true", "True", "false"):
        path.write_text(text.replace("FLAG", spelled), encoding="utf-8")
        assert load_protocol_or_template(path).structures["Core"].if_contoured is (spelled.lower() == "true")
    data = copy.deepcopy(AGREEMENT_BASE)
    data["site"], data["structures"]["Core"]["aliases"] = "SITE", ["ALIAS"]
    path.write_text(yaml.safe_dump(data, sort_keys=False).replace("SITE", written).replace("ALIAS", written),
                    encoding="utf-8")
    loaded = load_protocol_or_template(path)
    assert loaded.site == written and loaded.structures["Core"].aliases == [written]
