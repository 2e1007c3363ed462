"""Field checks for typed configs: one line each in a `__post_init__`, one `HelloraError` naming the field.

    positive_int(self.k, "selection.k", optional=True)   # selection.k: must be an integer >= 1, got 0
    number(self.fraction, "profile.fraction", low=0.0, high=1.0, low_open=True)
"""

from __future__ import annotations

from typing import Any

from hellora.utils.errors import HelloraError


def check(ok: bool, field: str, message: str, value: object) -> None:
    """One field check: `field: message, got value`."""
    if not ok:
        raise HelloraError(f"{field}: {message}, got {value!r}")


def positive_int(value: object, field: str, *, optional: bool = False, minimum: int = 1) -> None:
    if value is None and optional:
        return
    check(isinstance(value, int) and not isinstance(value, bool) and value >= minimum, field,
          f"must be an integer >= {minimum}", value)


def number(value: Any, field: str, *, low: float, high: float | None = None, low_open: bool = False,
           high_open: bool = False, optional: bool = False) -> None:
    if value is None and optional:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
    ok = ok and (value > low if low_open else value >= low)
    if high is not None:
        ok = ok and (value < high if high_open else value <= high)
    left, right = "(" if low_open else "[", ")" if high_open or high is None else "]"
    check(ok, field, f"must be a number in {left}{low:g}, {'inf' if high is None else f'{high:g}'}{right}", value)
