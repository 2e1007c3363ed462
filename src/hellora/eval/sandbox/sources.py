"""The trusted code the sandbox starts in other interpreters, as `python -c` source rather than file paths.

Why: the sample's interpreter runs under a dropped uid and with home folders hidden, so it may be unable to open
any file of the install (a clone in a mode-700 folder: issue 26). The harness reads these files once, in its own
process (which imported them, so it can), and hands the text over on the command line. `plain_data.py` is loaded
first as a module of that name, so `driver.py` and `checker.py` import it as they would from their own folder.
"""

from __future__ import annotations

import functools
from pathlib import Path

HERE = Path(__file__).resolve().parent
MAX_SOURCE_CHARS = 100_000  # one argv string may hold 128 KiB on Linux (MAX_ARG_STRLEN)


def bootstrap(main_file: str, helpers: tuple[str, ...] = ("plain_data",)) -> str:
    """Source for `python -I -S -B -c`: register each helper module, then run `main_file` as `__main__`."""
    lines = ["import sys as _sys, types as _types"]
    for name in helpers:
        text = (HERE / f"{name}.py").read_text(encoding="utf-8")
        lines.append(f"_m = _types.ModuleType({name!r})")
        lines.append(f"exec(compile({text!r}, {'<hellora ' + name + '>'!r}, 'exec'), _m.__dict__)")
        lines.append(f"_sys.modules[{name!r}] = _m")
    main = (HERE / main_file).read_text(encoding="utf-8")
    lines.append("del _sys, _types" + (", _m" if helpers else ""))
    lines.append(f"exec(compile({main!r}, {'<hellora ' + main_file + '>'!r}, 'exec'))")
    source = "\n".join(lines) + "\n"
    if len(source) > MAX_SOURCE_CHARS:
        raise RuntimeError(f"sandbox bootstrap for {main_file} is {len(source)} characters, over {MAX_SOURCE_CHARS}")
    return source


@functools.lru_cache(maxsize=None)
def driver_source() -> str:
    """What the sample's interpreter runs first (`driver.py`)."""
    return bootstrap("driver.py")


@functools.lru_cache(maxsize=None)
def checker_source() -> str:
    """What the trusted checker process runs (`checker.py`)."""
    return bootstrap("checker.py")
