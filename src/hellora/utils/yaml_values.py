"""YAML as people type it: `2e-4`, `-1e-4`, `1E-3` and `.5` are floats, in recipe files and `key=value` overrides.

PyYAML follows YAML 1.1, whose float pattern needs a dot and a signed exponent (`2.0e-4`), so it reads `2e-4` as
the string "2e-4" and a learning rate typed that way fails type checks far from where it was written. The loader
here is PyYAML's safe loader with the float pattern of YAML 1.2's core schema (which also keeps `1_000` and
`0x1F` as PyYAML reads them). Nothing else changes: `yes`/`no` stay booleans as in PyYAML.

    load_yaml("lr: 2e-4")                 # {"lr": 0.0002}
    parse_value("-1e-4")                  # -0.0001 (an override's value; text that is not YAML stays text)
    key_lines("train:\n  lr: 2e-4\n")     # {"train": 1, "train.lr": 2}: where each key was written

Every YAML file hellora reads (recipes, study configs, sweeps, a run's saved config.yaml) goes through `read_yaml`,
so all of them parse numbers alike and report a missing file, a syntax error or a top level that is not a mapping
in one line naming the file; `key=value` overrides go through `apply_overrides`.

    read_yaml("r.yaml", "recipe", overrides=["train.epochs=1"])   # {"train": {"epochs": 1, ...}, ...}
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hellora.utils.errors import HelloraError


class NumberLoader(yaml.SafeLoader):
    """`yaml.SafeLoader` whose floats also match `2e-4`, `1E3`, `.5`, `-1e-4` (YAML 1.2 core schema)."""


_FLOAT = re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""", re.X)

# Drop PyYAML's float resolver and install the wider one (the first-character table decides which resolvers run).
NumberLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:float"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
NumberLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT, list("-+0123456789."))


def load_yaml(text: str) -> Any:
    """Parse YAML text with number-friendly floats (raises `yaml.YAMLError` like `yaml.safe_load`)."""
    return yaml.load(text, Loader=NumberLoader)  # noqa: S506 - a SafeLoader subclass: no arbitrary objects


def parse_value(text: str) -> Any:
    """A command-line value: YAML-typed (`2e-4` -> float, `[a, b]` -> list), else the text itself."""
    if text == "":
        return None
    try:
        return load_yaml(text)
    except yaml.YAMLError:
        return text


def key_lines(text: str) -> dict[str, int]:
    """Dotted key -> 1-based line where it is written, for the nested mappings of a YAML document."""
    try:
        root = yaml.compose(text, Loader=NumberLoader)
    except yaml.YAMLError:
        return {}
    lines: dict[str, int] = {}

    def walk(node: yaml.Node | None, prefix: str) -> None:
        if not isinstance(node, yaml.MappingNode):
            return
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                name = f"{prefix}{key.value}"
                lines[name] = key.start_mark.line + 1
                walk(value, name + ".")

    walk(root, "")
    return lines


def parse_yaml_text(text: str, where: str) -> Any:
    """`text` parsed by `load_yaml`; a syntax error becomes one `HelloraError` "WHERE line N: invalid YAML (why)".

    PyYAML's own message spans several lines and points at its internals; a user needs the file and the line."""
    try:
        return load_yaml(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f" line {mark.line + 1}" if mark is not None else ""
        raise HelloraError(f"{where}{line}: invalid YAML ({getattr(e, 'problem', None) or e})") from None


def _read_text(path: Path, what: str, hint: str) -> str:
    """The file's text as UTF-8, or one error saying why there is none (a folder, no file, not text)."""
    see = f"; {hint}" if hint else ""
    if path.is_dir():
        raise HelloraError(f"{what} {path} is a folder; give a YAML file{f' ({hint})' if hint else ''}")
    if not path.is_file():
        raise HelloraError(f"{what} not found: {path} (no such file{see})")
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise HelloraError(f"{what} {path}: not a text file (expected YAML)") from None


def _as_mapping(data: Any, where: str, empty_ok: bool) -> dict[str, Any]:
    """A document's top level as a dict: every hellora YAML file is `key: value` pairs (empty: {} if allowed)."""
    if data is None and empty_ok:
        return {}
    if not isinstance(data, dict):
        got = "an empty file" if data is None else f"a {type(data).__name__}"
        raise HelloraError(f"{where}: expected key: value pairs, got {got}")
    return data


@dataclass(frozen=True)
class OverrideRules:
    """What a file's `key=value` overrides may set: `check(key parts, value, the override as typed)` returns the
    value to store or raises `HelloraError` for a key it refuses; `example` is shown to text without `=`."""

    check: Callable[[list[str], Any, str], Any] | None = None
    example: str = ""


def read_yaml(path: str | Path, what: str, *, hint: str = "", empty_ok: bool = True, overrides: Sequence[str] = (),
              rules: OverrideRules = OverrideRules(), sources: dict[str, str] | None = None) -> dict[str, Any]:
    """The one reader of hellora's YAML files: recipes, study configs, sweeps and a run's saved config.yaml.

    One reader, so every file parses numbers alike and every caller's user sees the same one-line errors: a
    folder, a missing file, bytes that are not UTF-8, a syntax error (with its line) or a top level that is not a
    mapping each raise one `HelloraError` naming the file. `what` names the file in those messages ("recipe",
    "sweep"), `hint` says where examples live; `empty_ok` reads an empty file as {}. `overrides` (`a.b=value`
    strings) are applied after reading, as `rules` allow (`apply_overrides`). When `sources` is given it is filled
    with where each dotted key was written ("recipe r.yaml line 7", "override a.b=1"), so later checks can point
    at the line or the override that set a bad value.
    """
    path = Path(path)
    where = f"{what} {path}"
    text = _read_text(path, what, hint)
    data = _as_mapping(parse_yaml_text(text, where), where, empty_ok)
    if sources is not None:
        sources.update({key: f"{where} line {line}" for key, line in key_lines(text).items()})
    if overrides:
        data = apply_overrides(data, overrides, rules=rules, sources=sources)
    return data


def split_override(item: str, what: str = "override", example: str = "") -> tuple[list[str], Any]:
    """`a.b=value` -> (["a", "b"], YAML-typed value); text without `=` is refused naming `item`."""
    key, sep, raw = item.partition("=")
    if not sep:
        raise HelloraError(f"{what} {item!r}: expected key=value" + (f", e.g. {example}" if example else ""))
    return key.strip().split("."), parse_value(raw)


def _set_dotted(data: dict[str, Any], parts: list[str], value: Any, item: str) -> None:
    """`data[a][b]... = value`, copying each mapping on the way so the caller's nested dicts are never changed.

    A top-level key holding a non-mapping is replaced by a fresh mapping (the config's own checks judge the
    result); deeper, a scalar cannot take sub-keys."""
    node = data
    for depth, name in enumerate(parts[:-1]):
        child = node.get(name)
        if child is not None and not isinstance(child, dict):
            if depth:
                raise HelloraError(f"override {item!r}: {'.'.join(parts[:depth + 1])} is not a mapping")
            child = None
        node[name] = dict(child or {})
        node = node[name]
    node[parts[-1]] = value


def apply_overrides(data: Mapping[str, Any] | None, overrides: Iterable[str], *,
                    rules: OverrideRules = OverrideRules(), sources: dict[str, str] | None = None) -> dict[str, Any]:
    """`data` (copied) with each `a.b.c=value` string applied; YAML-typed values (`2e-4` is a float).

    `rules.check` validates each key before it is set (a config refuses unknown sections, coerces a field). With
    `sources`, each prefix of an overridden key is recorded there as "override ITEM"."""
    result = {k: (dict(v) if isinstance(v, dict) else v) for k, v in (data or {}).items()}
    for item in overrides:
        parts, value = split_override(item, example=rules.example)
        if sources is not None:
            sources.update({".".join(parts[:depth]): f"override {item}" for depth in range(1, len(parts) + 1)})
        if rules.check is not None:
            value = rules.check(parts, value, item)
        _set_dotted(result, parts, value, item)
    return result
