"""plan.json's protocol record: the files' bytes (`sha256`) and what they state (`content_sha256`), the second so
that a comparison tells a comment edit from an unversioned change (audit s20/t1 F0)."""

from __future__ import annotations

import json
from pathlib import Path

from evaluate_fakes import synthetic_case
from specc.evaluate.record import ProtocolInfo
from specc.pipeline import plan
from specc.protocol import ProtocolSource, load_protocol

PROTOCOL = (
    "# a comment\n"
    "specc: 1\nname: Recorded\nsite: t\nversion: 1.0.0\n"
    "structures: {Target: {role: target}, Organ: {role: oar}}\n"
    "prescription: {fractions: 30, levels: [{target: Target, dose: 60 Gy}]}\n"
    "goals: {Target: ['D95% >= 54 Gy'], Organ: ['Mean <= 5 Gy']}\n"
    "optimization:\n  terms:\n"
    "    - {kind: quadratic_underdose, structure: Target, dose: 60 Gy, weight: 10}\n"
    "    - {kind: quadratic_overdose, structure: Organ, dose: 10 Gy, weight: 1}\n"
)


def test_plan_json_records_the_content_fingerprint_beside_the_files_bytes(tmp_path: Path) -> None:
    path = tmp_path / "recorded.yaml"
    path.write_text(PROTOCOL, encoding="utf-8")
    loaded = load_protocol(path)
    assert plan(loaded, synthetic_case(), tmp_path / "file").succeeded
    recorded = json.loads((tmp_path / "file" / "plan.json").read_text())["protocol"]
    assert recorded["sha256"] == loaded.source.sha256 != loaded.source.content_sha256
    assert recorded["content_sha256"] == loaded.source.content_sha256 == ProtocolSource.fingerprint(loaded)
    changed = loaded.model_copy(update={"version": "1.0.1"})  # changed in memory: no file holds it
    assert plan(changed, synthetic_case(), tmp_path / "memory").succeeded
    recorded = json.loads((tmp_path / "memory" / "plan.json").read_text())["protocol"]
    assert recorded["sha256"] == recorded["content_sha256"] == ProtocolSource.fingerprint(changed)


def test_a_protocol_record_written_before_the_fingerprint_still_reads() -> None:
    older = {"name": "Old", "version": "1.0.0", "site": "t", "files": ["old.yaml"], "sha256": "ab" * 32}
    assert ProtocolInfo.model_validate(older).content_sha256 is None
