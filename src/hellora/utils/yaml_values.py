"""YAML as people type it: `2e-4`, `-1e-4`, `1E-3` and `.5` are floats, in recipe files and `key=value` overrides.

PyYAML follows YAML 1.1, whose float pattern needs a dot and a signed exponent (`2.0e-4`), so it reads `2e-4` as
the string "2e-4" and a learning rate typed that way fails type checks far from where it was written. The loader
here is PyYAML's safe loader with the float pattern of YAML 1.2's core schema (which also keeps `1_000` and
`0x1F` as PyYAML reads them). Nothing else changes: `yes`/`no` stay booleans as in PyYAML.

    load_yaml("lr: 2e-4")                 # {"lr": 0.0002}
    parse_value("-1e-4")                  # -0.0001 (an override's value; text that is not YAML stays text)
    key_lines("train:\n  lr: 2e-4\n")     # {"train": 1, "train.lr": 2}: where each key was written
"""

from __future__ import annotations

import re

import yaml


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


def load_yaml(text: str):
    """Parse YAML text with number-friendly floats (raises `yaml.YAMLError` like `yaml.safe_load`)."""
    return yaml.load(text, Loader=NumberLoader)  # noqa: S506 - a SafeLoader subclass: no arbitrary objects


def parse_value(text: str):
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

    def walk(node, prefix: str) -> None:
        if not isinstance(node, yaml.MappingNode):
            return
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                name = f"{prefix}{key.value}"
                lines[name] = key.start_mark.line + 1
                walk(value, name + ".")

    walk(root, "")
    return lines
