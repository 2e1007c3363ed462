"""What hellora may replace: only outputs it made itself, recognised by a marker and by their layout.

`--overwrite` used to replace any folder that held a `config.yaml`, so a typo in `output_dir` could delete a
user's project. Now every output hellora writes carries a marker, written when hellora creates it:

    run folder       run.json with `format: hellora.run/1` and a `run_id`; every top-level entry one a run makes
    demo / report /  `.hellora-output.json` {format: hellora.output/1, kind, id, entries}; every top-level entry
    export folder    listed in `entries` (the names hellora wrote) or, while unfinished, one the kind's layout allows
    profile, placement and other JSON files: an object whose `format` starts with "hellora."

`check_replaceable` is the policy every writing command applies before any work: nothing there (or an empty
folder) is fine; anything else is refused unless `--overwrite`, and with it refused unless it is hellora's own.
A symbolic link is always refused (replacing it would write through it, or drop the link the user made). Each
refusal is one line that ends "(nothing was changed)".
"""

from __future__ import annotations

import fnmatch
import json
import os
import uuid
from enum import Enum
from pathlib import Path

from hellora.utils.errors import HelloraError

MARKER = ".hellora-output.json"
OUTPUT_FORMAT = "hellora.output/1"
RUN_FORMAT = "hellora.run/1"


class OutputKind(str, Enum):
    """The folders hellora writes, each with the top-level names it may hold while it is being written."""

    RUN = "run"
    DEMO = "demo"
    REPORT = "report"
    EXPORT = "export"

    @property
    def layout(self) -> tuple[str, ...]:
        return _LAYOUTS[self]


_LAYOUTS = {
    OutputKind.RUN: ("config.yaml", "run.json", "metrics.jsonl", "checkpoints", "adapter", "model", "eval",
                     "profile.json", "placement.json", "logs", "tensorboard", "wandb"),
    OutputKind.DEMO: ("demo.json", "*.png", "base-model", "data"),
    OutputKind.REPORT: ("report.md", "*.png"),
    OutputKind.EXPORT: (),  # written whole: its marker lists every entry
}
# What hellora's atomic writes and swaps leave beside a file for a moment (hellora.utils.io)
_OWN_TEMPORARY = (".*.tmp", ".*.old-*", ".*.replaced.*", ".*.lock", MARKER)


def new_run_id() -> str:
    return uuid.uuid4().hex


def _fits(name: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def _json_object(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def mark_folder(folder: str | os.PathLike, kind: OutputKind, *, finished: bool = False) -> Path:
    """Write `folder`'s marker: hellora made it. With `finished`, the marker lists the folder's entries, so a file
    added later by someone else makes the folder foreign again."""
    from hellora.utils.io import atomic_write_json

    folder = Path(folder)
    previous = _json_object(folder / MARKER) or {}
    entries = sorted(p.name for p in folder.iterdir() if p.name != MARKER) if finished else None
    return atomic_write_json(folder / MARKER, {"format": OUTPUT_FORMAT, "kind": kind.value,
                                               "id": previous.get("id") or uuid.uuid4().hex, "entries": entries})


def _foreign_entries(folder: Path, patterns: tuple[str, ...], names: tuple[str, ...] = ()) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name not in names and not _fits(p.name, patterns + _OWN_TEMPORARY))


def why_not_ours(path: str | os.PathLike, kind: OutputKind | None = None, formats: tuple[str, ...] = ()) -> str | None:
    """None when `path` is an output hellora made (a folder of `kind`, or a JSON file of one of `formats`, any
    hellora format when empty); otherwise why not, in a few words."""
    path = Path(path)
    if path.is_symlink():
        return "it is a symbolic link"
    if path.is_file():
        data = _json_object(path)
        found = data.get("format") if data else None
        if not isinstance(found, str) or not found.startswith("hellora.") or (formats and found not in formats):
            return "it is not a file hellora wrote" + (f" (expected format {formats[0]!r})" if formats else "")
        return None
    if not path.is_dir():
        return "it is not a file or a folder"
    if kind is None:
        return "it is a folder, not a file"
    if kind is OutputKind.RUN:
        record = _json_object(path / "run.json")
        if not record or record.get("format") != RUN_FORMAT or not isinstance(record.get("run_id"), str) \
                or not (path / "config.yaml").is_file():
            return "it holds no hellora run (no run.json with a run_id)"
        patterns, names = kind.layout, ()
    else:
        marker = _json_object(path / MARKER)
        if not marker or marker.get("format") != OUTPUT_FORMAT or marker.get("kind") != kind.value:
            return f"it holds no {kind.value} hellora made (no {MARKER})"
        entries = marker.get("entries")
        if entries is not None and not (isinstance(entries, list) and all(isinstance(e, str) for e in entries)):
            return f"its {MARKER} is damaged"
        patterns, names = (kind.layout, ()) if entries is None else ((), tuple(entries))
    foreign = _foreign_entries(path, patterns, names)
    if foreign:
        return f"it also holds {foreign[0]!r}, which hellora did not write"
    return None


def check_replaceable(path: str | os.PathLike, overwrite: bool, *, flag: str = "--out",
                      kind: OutputKind | None = None, formats: tuple[str, ...] = ()) -> None:
    """The overwrite policy, before any work: an existing output is refused unless `overwrite`, and then unless
    hellora made it (`why_not_ours`); a symbolic link is refused either way."""
    path = Path(path)
    if path.is_symlink():
        raise HelloraError(f"{flag} {path} is a symbolic link; give the real path (nothing was changed)")
    exists = path.is_file() or (path.is_dir() and any(path.iterdir())) or (path.exists() and not path.is_dir())
    if not exists:
        return
    if not overwrite:
        raise HelloraError(f"{flag} {path} already exists; choose another {flag} or pass --overwrite to replace it "
                           f"(nothing was changed)")
    why = why_not_ours(path, kind, formats)
    if why:
        raise HelloraError(f"{flag} {path}: --overwrite replaces only outputs hellora made, and {why}; choose "
                           f"another {flag} or remove it yourself (nothing was changed)")


EVAL_REPORT_KEYS = ("task", "protocol", "headline", "scores", "meta")  # what evaluate_task writes


def check_eval_outputs(report: Path, generations: Path) -> None:
    """Before `eval --overwrite` replaces `eval_<task>.json` (and `<task>_generations.jsonl` beside it): the
    report must be one hellora's eval wrote (its fields), and neither file a symbolic link. Generations with no
    report beside them are what an interrupted eval leaves, rewritten as before."""
    for path in (report, generations):
        if path.is_symlink():
            raise HelloraError(f"{path} is a symbolic link; --overwrite replaces only files hellora wrote "
                               f"(nothing was changed)")
    if not report.exists():
        return
    data = _json_object(report) if report.is_file() else None
    if data is None or not all(key in data for key in EVAL_REPORT_KEYS):
        raise HelloraError(f"{report}: --overwrite replaces only evaluation reports hellora wrote, and this is not "
                           f"one; choose another --out or remove it yourself (nothing was changed)")
