"""Goal limits by a structure's volume: a protocol's table read at the volume each case has.

SBRT protocols (RTOG 0813 / 0915 / 0618) state their dose spillage limits as a table by PTV volume: for
PTVs of 1.8 ... 163 cc, the maximum dose 2 cm from the PTV and R50, each with a minor-deviation value,
a PTV between two rows taking the values interpolated linearly. One protocol serves a cohort, so the
limit of such a goal is no number of the file: it is the table, read at the structure's volume on each
case (`Goal.at_volume`, called by the compile stage once the case's masks are known). A volume outside
the table is an error: the protocol states no limit there, and none is extrapolated or clamped.

The written form is the value of a goal mapping's comparator (`VolumeTableMapping`):

    - metric: Max
      "<=": {by_volume_of: PTV, volume_cc: [1.8, 3.8, 7.4], limit: [50%, 50%, 50%], variation: [57%, 57%, 58%]}

The limits are read by the goal's metric (`specc.protocol.goals.parse_threshold`); this module holds
the rows as numbers (`VolumeTable`) and knows nothing of metrics.
"""

from __future__ import annotations

import bisect
import math
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from specc.protocol.units import format_number, places_apart

# What a row's limit is written as: a number with the unit of the goal's metric ("50%", "30 Gy", 4.5).
WrittenLimit = Annotated[str | float, Field(description='A limit in the unit of the goal\'s metric, e.g. "54%" or 4.5.')]


class VolumeTableMapping(BaseModel):
    """A goal's limit as a table by a structure's volume on the case, as written in a protocol."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    by_volume_of: str = Field(
        min_length=1, description="The structure whose volume on the case (cc, on its mask) picks the limit."
    )
    volume_cc: list[float] = Field(
        min_length=2, description="The table's structure volumes in cc, increasing; a case between two is interpolated."
    )
    limit: list[WrittenLimit] = Field(description="The limit at each volume, in the unit of the goal's metric.")
    variation: list[WrittenLimit] | None = Field(
        default=None, description="The acceptable variation (minor deviation) at each volume, on the lenient side."
    )

    @field_validator("volume_cc")
    @classmethod
    def _increasing(cls, volumes: list[float]) -> list[float]:
        for index, volume in enumerate(volumes):
            if not math.isfinite(volume) or volume <= 0:
                shown = format_number(volume) if math.isfinite(volume) else str(volume)  # "0", "-2.5"; "nan", "inf"
                raise ValueError(f"volume_cc[{index}] is {shown}: a structure volume is a finite number of cc above 0")
            if index and volume <= volumes[index - 1]:
                raise ValueError(
                    f"volume_cc must increase row by row: volume_cc[{index}] {format_number(volume)} cc follows "
                    f"volume_cc[{index - 1}] {format_number(volumes[index - 1])} cc"
                )
        return volumes

    @model_validator(mode="after")
    def _one_row_each(self) -> VolumeTableMapping:
        rows = len(self.volume_cc)
        for name, values in (("limit", self.limit), ("variation", self.variation)):
            if values is not None and len(values) != rows:
                raise ValueError(f"{name} has {len(values)} values for the {rows} rows of volume_cc: give one per row")
        return self


class VolumeTable(BaseModel):
    """A goal's limits by the volume of `structure`, in the goal's unit (`relative`: % of its prescription)."""

    model_config = ConfigDict(frozen=True)

    structure: str
    volumes_cc: tuple[float, ...]
    limits: tuple[float, ...]
    variations: tuple[float, ...] | None = None
    relative: bool = Field(default=False, description="true: the limits are percentages of the structure's prescription")

    @property
    def range_text(self) -> str:
        return f"{format_number(self.volumes_cc[0])}-{format_number(self.volumes_cc[-1])} cc"

    def covers(self, volume_cc: float) -> bool:
        return self.volumes_cc[0] <= volume_cc <= self.volumes_cc[-1]

    def at(self, volume_cc: float) -> tuple[float, float | None]:
        """The limit and variation at `volume_cc`, interpolated linearly between the rows around it; a
        ValueError outside the table (no limit is extrapolated or clamped)."""
        if not self.covers(volume_cc):
            raise ValueError(
                f"{self.structure} is {self.volume_text(volume_cc)} cc on this case, outside the table's "
                f"{self.range_text}: the protocol states no limit for it (none is extrapolated); add a row for this "
                "volume"
            )
        limit = _interpolated(self.volumes_cc, self.limits, volume_cc)
        variation = None if self.variations is None else _interpolated(self.volumes_cc, self.variations, volume_cc)
        return limit, variation

    def volume_text(self, volume_cc: float) -> str:
        """A case's volume to two decimals, or as many more as tell it from the rows it is compared with ("1.7999",
        not "1.80" beside the table's 1.8 cc first row)."""
        return f"{volume_cc:.{places_apart(volume_cc, self.volumes_cc)}f}"

    def rows_text(self, volume_cc: float) -> str:
        """Which rows `volume_cc` was read from: "the 22 cc row", "between the 13.2 and 22 cc rows"."""
        if volume_cc in self.volumes_cc:
            return f"the {format_number(volume_cc)} cc row"
        above = bisect.bisect_right(self.volumes_cc, volume_cc)
        return (f"between the {format_number(self.volumes_cc[above - 1])} and "
                f"{format_number(self.volumes_cc[above])} cc rows")


def _interpolated(volumes: tuple[float, ...], values: tuple[float, ...], volume: float) -> float:
    """`values` at `volume` on straight lines between the rows, to 9 decimals: a limit a record hands on is compared
    as written (54 + 4 x 0.5 is 56, not 55.99999999999999)."""
    above = min(bisect.bisect_right(volumes, volume), len(volumes) - 1)
    low, high = volumes[above - 1], volumes[above]
    share = (volume - low) / (high - low)
    return round(values[above - 1] + share * (values[above] - values[above - 1]), 9)
