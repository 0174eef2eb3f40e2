"""Shared pieces of the clinical-optimizer tests: a coarse C-shape phantom and protocol text.

10 mm grid, 10 mm beamlets, 5 beams: a plan solves in about a second on two cores.
"""

from __future__ import annotations

from functools import lru_cache

from specc.case import Case
from specc.case.phantoms import build_phantom

HEADER = """specc: 1
name: test
site: phantom
version: 1.0.0
structures:
  {target}: {{role: target, aliases: [PTV]}}
  {organ}: {{role: oar, aliases: [Core]}}
{others}prescription:
  fractions: 25
  levels: [{{target: {target}, dose: 50 Gy}}]
"""


@lru_cache(maxsize=1)
def c_shape() -> Case:
    return build_phantom("c-shape", beams=5, grid_mm=10.0, beamlet_mm=10.0)


def protocol_text(body: str, target: str = "PTV", organ: str = "Core", with_body: bool = False) -> str:
    """A protocol on the C-shape with `body` (goals / optimization YAML) appended.

    `target` and `organ` name the PTV and the core (matched to the case through aliases);
    `with_body` also declares the phantom's Body.
    """
    others = "  Body: {role: other}\n" if with_body else ""
    return HEADER.format(target=target, organ=organ, others=others) + body

