"""Checks for the fields of files hellora reads back (profiles, placements, adapter and run records).

Every such file is untrusted input: it may be hand-edited, damaged, or made by someone else. JSON gives `2.5`,
`true`, `NaN`, `-1`, strings and nesting where an expert id belongs, and Python's `int()` would quietly turn
`2.5` into 2 and `true` into 1. These helpers accept exactly the type asked for and raise one `HelloraError`
naming the file and the field:

    integer(data["num_experts"], f"{where}: field 'num_experts'", low=1)
    ids = integer_list(row, f"{where}: experts of layer 3", low=0, below=num_experts)
"""

from __future__ import annotations

import math
from typing import Any, Literal, overload

from hellora.utils.errors import HelloraError


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def is_integer(value: object) -> bool:
    """A JSON integer: int, not bool (JSON `true` is not an expert id), not a float such as 2.0 or 2.5."""
    return isinstance(value, int) and not isinstance(value, bool)


@overload
def integer(value: Any, what: str, *, low: int | None = None, below: int | None = None,
            optional: Literal[False] = False) -> int: ...


@overload
def integer(value: Any, what: str, *, low: int | None = None, below: int | None = None,
            optional: bool) -> int | None: ...


def integer(value: Any, what: str, *, low: int | None = None, below: int | None = None,
            optional: bool = False) -> int | None:
    """`value` as an integer in [low, below), or one error line naming `what`."""
    if value is None and optional:
        return None
    if not is_integer(value):
        raise HelloraError(f"{what} must be an integer, got {_shown(value)}")
    if (low is not None and value < low) or (below is not None and value >= below):
        if low is not None and below is not None:
            raise HelloraError(f"{what} = {value} is outside [{low}, {below})")
        raise HelloraError(f"{what} must be {'>= ' + str(low) if low is not None else '< ' + str(below)}, got {value}")
    return value


def number(value: Any, what: str, *, low: float | None = None) -> float:
    """A finite JSON number (int or float, not bool, not NaN/inf), >= low when given."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        raise HelloraError(f"{what} must be a finite number, got {_shown(value)}")
    if low is not None and value < low:
        raise HelloraError(f"{what} must be >= {low:g}, got {value:g}")
    return value


def integer_list(values: object, what: str, *, low: int | None = None, below: int | None = None) -> list[int]:
    if not isinstance(values, list):
        raise HelloraError(f"{what} must be a list of integers, got {_shown(values)}")
    return [integer(v, f"{what}[{i}]", low=low, below=below) for i, v in enumerate(values)]


def number_rows(rows: Any, what: str, *, n_rows: int, n_cols: int, low: float | None = 0.0) -> list[list[float]]:
    """An (n_rows, n_cols) list of lists of finite numbers >= low."""
    if not isinstance(rows, list) or len(rows) != n_rows:
        raise HelloraError(f"{what} must be a list of {n_rows} rows, got {_shown(rows)}")
    for i, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != n_cols:
            raise HelloraError(f"{what}[{i}] must be a list of {n_cols} numbers, got {_shown(row)}")
        for j, v in enumerate(row):
            number(v, f"{what}[{i}][{j}]", low=low)
    return rows


def layer_key(key: object, what: str) -> int:
    """A JSON object key naming a decoder layer: the decimal digits of an integer >= 0 ("3", not "3.0" or "-1")."""
    if not isinstance(key, str) or not key.isdigit() or not key.isascii():
        raise HelloraError(f"{what}: layer {_shown(key)} is not a layer index (a whole number >= 0)")
    return int(key)


def optional_text(value: object, what: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise HelloraError(f"{what} must be text, got {_shown(value)}")
    return value


def mapping(value: object, what: str, *, optional: bool = False) -> dict:
    if value is None and optional:
        return {}
    if not isinstance(value, dict):
        raise HelloraError(f"{what} must be an object, got {_shown(value)}")
    return value
