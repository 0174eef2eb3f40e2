"""A limit read from a table by a structure's volume is interpolated between two rows (27.932727... Gy): shown with
two decimals like the report's other limits, not six or nine (audit s18/b2 F7), or with as many more as it takes
for the goal's value as shown to compare with it as the goal was judged. plan.json keeps the whole number."""

from __future__ import annotations

from specc.compile.derive import derive_optimization
from specc.evaluate import GoalRecord
from specc.protocol import parse_protocol_text
from specc.report.limits import resolved_limits

SOURCE = "from the table by PTV volume at 17.00 cc, between the 13.2 and 22 cc rows"


def _record(value: float, threshold: float = 27.932727273, variation: float | None = 32.485909091) -> GoalRecord:
    status = "pass" if value <= threshold else "variation" if variation is not None and value <= variation else "fail"
    return GoalRecord(structure="D2cm", text="Max <= 50%-77% by PTV volume, 1.8-163 cc (variation 57%-94%)",
                      metric="Max", comparator="<=", threshold=threshold, variation=variation, unit="Gy", priority=2,
                      source="p.yaml:12", value=value, measured_status=status, status=status, note="",
                      dvh_point=None, limit_source=SOURCE)


def test_a_table_limit_is_shown_with_two_decimals() -> None:
    assert resolved_limits(_record(24.8)) == f"27.93 Gy, variation 32.49 Gy, {SOURCE}"


def test_a_table_limit_gets_the_decimals_its_value_needs_to_read_as_judged() -> None:
    """27.936727 Gy shown as 27.94 Gy beside a value shown as 27.94 Gy FAIL would read as a contradiction."""
    record = _record(27.937, threshold=27.936727, variation=None)
    assert record.status == "fail" and record.shown(27.937) == "27.94"
    assert resolved_limits(record) == f"27.937 Gy, {SOURCE}"


def test_explain_notes_a_table_limit_with_two_decimals() -> None:
    protocol = parse_protocol_text("""\
specc: 1
name: by volume
site: test
version: 1.0.0
structures:
  PTV: {role: target}
  Ring: {role: other}
prescription: {fractions: 3, levels: [{target: PTV, dose: 54 Gy}]}
goals:
  PTV:
    - "D95% >= 54 Gy"
  Ring:
    - metric: Max
      "<=": {by_volume_of: PTV, volume_cc: [1.8, 22], limit: [50%, 54%]}
""", "p.yaml")
    notes = derive_optimization(protocol, {"PTV": 5.0, "Ring": 100.0}).notes
    (note,) = [note for note in notes if "from the table" in note]
    assert "aimed at 50.63%, from the table by PTV volume at 5.00 cc" in note  # np.interp: 50.633663...%
