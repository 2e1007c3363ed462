"""The plain-data wire format between a HumanEval candidate and the trusted checker (`sandbox/plain_data.py`)."""

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hellora.eval.sandbox.plain_data import NotPlainData, dumps, from_wire, loads, to_wire

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text() | st.binary() \
    | st.complex_numbers(allow_nan=False)
hashables = st.recursive(scalars, lambda inner: st.tuples(inner, inner) | st.frozensets(inner, max_size=3),
                         max_leaves=8)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.tuples(inner, inner) | st.dictionaries(hashables, inner, max_size=3)
    | st.sets(hashables, max_size=3),
    max_leaves=20,
)


def same(a, b) -> bool:
    """Equal *and* of the same builtin types all the way down (`==` alone says 1 == 1.0 == True)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


@settings(max_examples=200, deadline=None)
@given(values)
def test_plain_values_cross_the_wire_unchanged(value):
    back = from_wire(loads(dumps({"ok": to_wire(value)}))["ok"])
    assert same(back, value)


def test_inf_nan_and_negative_zero():
    back = from_wire(loads(dumps({"ok": to_wire([math.inf, -math.inf, math.nan, -0.0])}))["ok"])
    assert back[:2] == [math.inf, -math.inf] and math.isnan(back[2]) and math.copysign(1, back[3]) == -1


class Loud(str):
    def __eq__(self, other):
        return True

    __hash__ = str.__hash__


class Anything:
    def __eq__(self, other):
        return True


@pytest.mark.parametrize("value, forged", [(Loud("x"), True), (Anything(), True), ([1, Anything()], True),
                                           ((x for x in ()), False),
                                           (object(), False), ({"k": Loud("v")}, True)])
def test_non_plain_values_do_not_encode(value, forged):
    with pytest.raises(NotPlainData) as err:
        to_wire(value)
    assert err.value.looks_forged is forged


@pytest.mark.parametrize("wire", [{"eq": 1}, {"tuple": 1}, {"dict": [[1]]}, {"dict": [[[1], 2]]}, {"set": [[1]]},
                                  {"bytes": "zz"}, {"complex": ["1", 2]}, {"tuple": [], "set": []}, {}])
def test_malformed_wire_data_is_refused(wire):
    with pytest.raises(ValueError):
        from_wire(wire)


def test_deep_nesting_and_bad_lines_are_refused():
    deep = "[" * 5000 + "]" * 5000
    with pytest.raises(ValueError):
        loads(deep.encode())
    with pytest.raises(ValueError):
        from_wire(json.loads("[" * 150 + "]" * 150))
    with pytest.raises(ValueError):
        loads(b'{"ok": ' + b"9" * 5000 + b"}")  # past Python's int-from-text limit
    with pytest.raises(ValueError):
        loads(b"[1, 2]")  # a message is an object
