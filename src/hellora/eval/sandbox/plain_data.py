"""Plain data on the wire between a HumanEval candidate (sandboxed child) and the trusted checker.

Why: the checker must compare values the candidate returned without ever holding an object the candidate made (an
object whose `__eq__` is always True, a `str` subclass, ...). So every argument and return value crosses the pipe as
one line of JSON with type tags, and the receiving side rebuilds it from builtin types only. Nothing is unpickled,
nothing is evaluated: `json.loads` plus a walk that accepts exactly these shapes:

    None, bool, int, float (inf / nan included), str    as JSON itself
    list                                                a JSON array
    {"tuple": [...]} {"set": [...]} {"frozenset": [...]}
    {"dict": [[key, value], ...]}                       keys in the same encoding (any hashable plain value)
    {"bytes": "<hex>"} {"complex": [re, im]}

Anything else (a generator, a custom object, a subclass of a builtin) does not encode: `NotPlainData` names its type.

Standard library only, no `from __future__`: this file's source is also prepended to the sandbox driver and the
checker, which run with `python -I -S -B -c` outside any package (see `sources.py`).
"""

import json

TYPE_CHECKING = False  # the type checker reads the import below; the sandbox never loads typing
if TYPE_CHECKING:
    from typing import Any

MAX_DEPTH = 100  # deeper nesting is refused on both sides (HumanEval values nest a few levels at most)
SCALARS = (type(None), bool, int, float, str)
TAGS = ("tuple", "set", "frozenset", "dict", "bytes", "complex")


class NotPlainData(Exception):
    """A value that cannot cross the pipe: `type_name` says what it was, `looks_forged` whether it imitates plain
    data (a subclass of a builtin, or an object with its own `__eq__`)."""

    def __init__(self, type_name: str, looks_forged: bool) -> None:
        Exception.__init__(self, "not plain data: %s" % type_name)
        self.type_name = type_name
        self.looks_forged = looks_forged


def _forged(value):
    cls = type(value)
    builtin_bases = (bool, int, float, complex, str, bytes, list, tuple, dict, set, frozenset)
    return any(issubclass(cls, base) for base in builtin_bases) or getattr(cls, "__eq__", None) is not object.__eq__


def to_wire(value: "Any", depth: int = 0) -> "Any":
    """`value` as JSON-ready data with type tags; raises NotPlainData (exact builtin types only)."""
    if depth > MAX_DEPTH:
        raise NotPlainData("nesting deeper than %d" % MAX_DEPTH, False)
    cls = type(value)
    if cls in SCALARS:
        return value
    if cls is list:
        return [to_wire(v, depth + 1) for v in value]
    if cls in (tuple, set, frozenset):
        return {cls.__name__: [to_wire(v, depth + 1) for v in value]}
    if cls is dict:
        return {"dict": [[to_wire(k, depth + 1), to_wire(v, depth + 1)] for k, v in value.items()]}
    if cls is bytes:
        return {"bytes": value.hex()}
    if cls is complex:
        return {"complex": [value.real, value.imag]}
    raise NotPlainData("%s.%s" % (getattr(cls, "__module__", "?"), getattr(cls, "__qualname__", "?")),
                       _forged(value))


def from_wire(data: "Any", depth: int = 0) -> "Any":
    """Rebuild a value from `to_wire` data using builtin types only; ValueError on anything else."""
    if depth > MAX_DEPTH:
        raise ValueError("nesting deeper than %d" % MAX_DEPTH)
    cls = type(data)
    if cls in SCALARS:
        return data
    if cls is list:
        return [from_wire(v, depth + 1) for v in data]
    if cls is not dict or len(data) != 1:
        raise ValueError("not a tagged value: %s" % cls.__name__)
    (tag, body), = data.items()
    if tag in ("tuple", "set", "frozenset") and type(body) is list:
        items = [from_wire(v, depth + 1) for v in body]
        try:
            return {"tuple": tuple, "set": set, "frozenset": frozenset}[tag](items)
        except TypeError:  # an unhashable member of a set
            raise ValueError("unhashable member in a %s" % tag) from None
    if tag == "dict" and type(body) is list:
        out = {}
        for pair in body:
            if type(pair) is not list or len(pair) != 2:
                raise ValueError("a dict entry is not a [key, value] pair")
            try:
                out[from_wire(pair[0], depth + 1)] = from_wire(pair[1], depth + 1)
            except TypeError:
                raise ValueError("unhashable dict key") from None
        return out
    if tag == "bytes" and type(body) is str:
        return bytes.fromhex(body)
    if tag == "complex" and type(body) is list and len(body) == 2 and all(type(x) in (int, float) for x in body):
        return complex(body[0], body[1])
    raise ValueError("unknown tag %r" % (tag,))


def dumps(message: "dict[str, Any]") -> bytes:
    """One message (a dict of JSON-ready data) as one line of bytes."""
    return (json.dumps(message, separators=(",", ":"), allow_nan=True) + "\n").encode()


def loads(line: "str | bytes") -> "dict[str, Any]":
    """One line back into a message dict; ValueError if it is not one (bad JSON, too deep, huge ints ...)."""
    try:
        message = json.loads(line)
    except (ValueError, RecursionError) as e:
        raise ValueError("not a JSON line: %s" % str(e)[:200]) from None
    if type(message) is not dict:
        raise ValueError("a message must be a JSON object")
    return message
