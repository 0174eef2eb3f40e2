"""protocols/examples/lung-sbrt-54-in-3.yaml as RTOG 0813 / 0915 state it. Its D2cm region is RTOG's "2 cm from
the PTV": it holds the voxels exactly 2 cm away (audit s18/b2 F5). A ring leaves out the voxels at exactly its inner distance, so `ring(PTV, 20mm, 150mm)` began beyond 2 cm:
on a 10 mm grid the voxels at 20 mm had 57.7% of the dose against a 54% limit, and D2cm read 46.9%, PASS."""

from __future__ import annotations

import re

import numpy as np
import pytest

from specc.compile.derived import evaluate_expression
from specc.protocol import ProtocolError, load_protocol, parse_protocol_text

SBRT = "protocols/examples/lung-sbrt-54-in-3.yaml"


@pytest.mark.parametrize("spacing_mm", [10.0, 5.0, 2.5, 1.0])
def test_d2cm_holds_the_voxels_2_cm_from_the_ptv_and_none_nearer(spacing_mm: float) -> None:
    expression = load_protocol(SBRT).structures["D2cm"].expression
    steps = int(round(40 / spacing_mm))
    shape = (2 * steps + 1,) * 3
    ptv = np.zeros(shape, dtype=bool)
    ptv[steps, steps, steps] = True  # one voxel: each voxel's distance from the PTV is from its centre
    masks = {"PTV": ptv, "Body": np.ones(shape, dtype=bool)}
    d2cm = evaluate_expression(expression, masks.__getitem__, (spacing_mm,) * 3)
    offsets = np.indices(shape) - steps
    distance_mm = np.sqrt((offsets.astype(float) ** 2).sum(axis=0)) * spacing_mm
    assert d2cm[np.isclose(distance_mm, 20.0)].all() and d2cm[np.isclose(distance_mm, 20.0)].size
    assert d2cm[(distance_mm > 20.0) & (distance_mm <= 40.0)].all()
    # nothing more than 0.1 mm inside 2 cm (the cost of 19.9 mm on a fine grid)
    assert not d2cm[distance_mm <= 19.9].any()


def test_the_language_overview_says_the_spillage_limits_are_read_on_each_case() -> None:
    """Audit s18/b2 F6: docs/protocol-language.md still said the limits were written for a 22 cc PTV, "to be set per
    patient", two releases after the file read them from the table on each case."""
    text = " ".join(open("docs/protocol-language.md", encoding="utf-8").read().split())
    start = text.index("`lung-sbrt-54-in-3`: lung SBRT")
    overview = text[start:text.index("examples to adapt", start)]
    assert "set per patient" not in overview and "22 cc" not in overview
    assert "table by PTV volume" in overview and "read on each case" in overview


def test_the_documented_clash_with_d2cms_table_is_the_one_the_code_reports() -> None:
    """Audit s18/r1 F10: docs/protocol-language.md quoted 'where PTV is 1.8-90.25 cc (the table's 1.8 cc row)', a test's
    two-row table, for `Min >= 35 Gy` against D2cm's eleven rows."""
    written = open(SBRT, encoding="utf-8").read()
    text = written.replace("  D2cm:\n    - metric: Max ", '  D2cm:\n    - "Min >= 35 Gy"\n    - metric: Max ', 1)
    assert text != written
    with pytest.raises(ProtocolError) as raised:
        parse_protocol_text(text, SBRT)
    [said] = [d.message for d in raised.value.diagnostics if "Min >= 35 Gy" in d.message]
    quoted = re.search(r"where PTV is [^)]*\)", said)
    assert quoted is not None
    assert quoted[0] == "where PTV is 1.8-64.07 cc (the table's 1.8, 3.8, 7.4, 13.2, 22, 34, 50 cc rows)"
    docs = " ".join(open("docs/protocol-language.md", encoding="utf-8").read().split())
    assert quoted[0] in docs
