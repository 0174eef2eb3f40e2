"""The README's promises: its protocol example validates and its commands name real things."""

from __future__ import annotations

import re
from pathlib import Path

from specc.protocol import parse_protocol_text

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_protocol_example_validates() -> None:
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no yaml block"
    protocol = parse_protocol_text(blocks[0], "README.md")
    assert protocol.prescription.levels[0].dose_per_fraction_gy == 2.0
    assert {goal.structure for goal in protocol.goals} == {"PTV", "Core"}


def test_the_first_two_commands_are_the_main_job_and_the_tests() -> None:
    first_block = re.search(r"```bash\n(.*?)```", README.read_text(), flags=re.S)
    assert first_block is not None
    commands = [line for line in first_block.group(1).splitlines() if line.strip()]
    assert len(commands) == 2
    assert "specc plan protocols/tg119/c-shape.yaml --phantom c-shape" in commands[0]
    assert "pytest" in commands[1]
    protocol_path = README.parent / "protocols" / "tg119" / "c-shape.yaml"
    assert protocol_path.is_file()
