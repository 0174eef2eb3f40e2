"""How a value is read against a goal's limit, for every stage that shows one.

A goal's comparator is the protocol's language; the solve stage (the exact DVH limits of its
log) and the evaluation (the goals) both show values against such limits, and must read them
alike: with the digits it takes for the number shown to meet the limit exactly when the value
does ("72.00 Gy  FAIL" against "Min >= 72 Gy" reads as a contradiction).
"""

from __future__ import annotations

# Only the rounding of stored doses is forgiven, never a clinical tolerance: a plan normalized so
# that a goal's metric is exactly its threshold must keep its status when its dose is read back
# from float32 (result.h5, and the RT Dose exported from it: 6e-8 of each value; a D95% of exactly
# 75.6 Gy read back as 75.599998 Gy failed the goal its plan had passed). 1e-6 of the threshold is
# 0.08 mGy at 80 Gy, a thousandth of the 0.1% hard limits are held to.
DOSE_ROUNDING = 1e-6


def meets(value: float, comparator: str, threshold: float) -> bool:
    """Whether `value comparator threshold` holds (<= and >= forgive rounding noise only)."""
    slack = DOSE_ROUNDING * max(abs(threshold), 1e-12)
    if comparator == "<=":
        return value <= threshold + slack
    if comparator == ">=":
        return value >= threshold - slack
    if comparator == "<":
        return value < threshold
    if comparator == ">":
        return value > threshold
    raise ValueError(f"unknown comparator {comparator!r}")


def judged_text(value: float, comparator: str, threshold: float, variation: float | None, digits: int = 2) -> str:
    """`value` with `digits` decimals, or with as many more (up to 6) as it takes for the shown number to
    meet the goal's threshold and variation exactly when the value does: a hard limit met within its
    tolerance can leave a goal failed by 1e-4 Gy, and "72.00 Gy  FAIL" against "Min >= 72 Gy" reads as
    a contradiction; "71.9999 Gy  FAIL" does not."""
    limits = [threshold] if variation is None else [threshold, variation]
    places = digits
    while places < 6 and any(meets(round(value, places), comparator, limit) != meets(value, comparator, limit)
                             for limit in limits):
        places += 1
    return f"{value:.{places}f}"
