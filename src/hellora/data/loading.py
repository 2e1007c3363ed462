"""Read training and evaluation records from local files or the Hugging Face hub, and sample them.

Every task in hellora starts from a flat list of dict records (one per example). This module is the one place
that turns a user's `--data` argument into such a list, so that the many ways a file can be wrong (missing, empty,
a bad line, a missing field) all surface as one `HelloraError` that names the file and the line or record at
fault, instead of a `KeyError` deep inside training.

Local formats, chosen by file name (a trailing `.gz` means gzip-compressed, decompressed on the fly):
  * `.json`  - a list of objects, or an object holding that list under "data" or "train";
  * `.jsonl` / `.ndjson` - one object per line (blank lines are skipped);
  * `.csv`   - a header row naming the fields, or no header when `csv_fieldnames` is given (AdvBench ships
               one prompt per line with no header; reading its first prompt as a header would silently drop it).

Anything that is not an existing file and looks like `owner/name` (or a bare `name`) is treated as a hub dataset
id and read with `datasets.load_dataset`, imported only then so that local runs never need the library.

`sample_fraction` draws the seeded p% subset used by HELLoRA's warm-up (Algorithm 1, line 1: |D_warm| = p% |D|,
default p = 10).
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
import numbers
import os
import random
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

from hellora.utils.errors import HelloraError

#: File suffixes we can read (after removing a trailing ".gz").
LOCAL_FORMATS = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}

#: Keys under which a JSON object may hold its list of records (the common dump layouts).
JSON_LIST_KEYS = ("data", "train")

#: A hub dataset id: "name" or "owner/name", letters, digits, "-", "_", ".", not starting with "." or "/".
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")

DEFAULT_WARMUP_FRACTION = 0.10


# --------------------------------------------------------------------------------------------------------------
# Public API
# --------------------------------------------------------------------------------------------------------------


def load_records(
    source: str | os.PathLike,
    *,
    required_fields: Sequence[str] = (),
    split: str = "train",
    hub_config: str | None = None,
    csv_fieldnames: Sequence[str] | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Load records from a local file or a hub dataset id, and check that each has `required_fields`.

    `split` and `hub_config` apply to hub datasets only (a local file is one split already). `limit` keeps the
    first N records (after validation of those N), for quick runs. Raises `HelloraError` naming the file and the
    line (JSONL, CSV) or 1-based record number (JSON, hub) of the first problem found.
    """
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise HelloraError(f"limit must be a positive integer, got {limit!r}")
    located = list(_iter_located(source, split=split, hub_config=hub_config, csv_fieldnames=csv_fieldnames))
    if not located:
        raise HelloraError(f"dataset {source} has no records")
    if limit is not None:
        located = located[:limit]
    for where, record in located:
        check_fields(record, required_fields, where)
    return [record for _, record in located]


def check_fields(record: Any, required_fields: Iterable[str], where: str) -> None:
    """Raise `HelloraError` if `record` is not an object or lacks a field; `where` says which record it is.

    A field counts as missing when the key is absent or its value is null; an empty string is allowed (Alpaca's
    `input` is empty for about half of all examples).
    """
    if not isinstance(record, dict):
        raise HelloraError(f"{where}: expected a JSON object with fields, got {type(record).__name__}")
    for field in required_fields:
        if record.get(field) is None:
            have = ", ".join(sorted(map(str, record))) or "none"
            raise HelloraError(f"{where} is missing required field '{field}' (fields present: {have})")


def sample_fraction(records: Sequence[Any], fraction: float = DEFAULT_WARMUP_FRACTION, seed: int = 0) -> list[Any]:
    """Return a seeded random `fraction` of `records` (at least one), in their original order.

    Size is `fraction * len(records)` rounded half-up, floored at 1 so a tiny dataset still yields a warm-up
    sample. Records come back in file order rather than draw order: the warm-up shuffles them anyway, and file
    order makes the chosen subset easy to diff between runs. The same (records, fraction, seed) always gives the
    same sample, across processes and Python versions (it uses `random.Random(seed)`, not the global RNG).
    """
    if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not (0 < fraction <= 1):
        raise HelloraError(f"fraction must be a number in (0, 1], got {fraction!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise HelloraError(f"seed must be an integer, got {seed!r}")
    n = len(records)
    if n == 0:
        raise HelloraError("cannot sample a fraction of an empty dataset (it has no records)")
    k = min(n, max(1, math.floor(float(fraction) * n + 0.5)))
    chosen = sorted(random.Random(seed).sample(range(n), k))
    return [records[i] for i in chosen]


def is_hub_id(source: str | os.PathLike) -> bool:
    """True when `source` should be read from the hub: not an existing path, no known file suffix, id-shaped."""
    text = os.fspath(source)
    path = Path(text)
    if path.exists() or _format_of(path) is not None:
        return False
    # "data/train" whose "data" folder exists here is a mistyped local path, not the hub dataset "data/train".
    if len(path.parts) > 1 and Path(path.parts[0]).is_dir():
        return False
    return bool(_HUB_ID.match(text))


# --------------------------------------------------------------------------------------------------------------
# Readers. Each yields (where, record) pairs; `where` is the human location used in error messages.
# --------------------------------------------------------------------------------------------------------------


def _format_of(path: Path) -> str | None:
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    return LOCAL_FORMATS.get(suffixes[-1]) if suffixes else None


def _iter_located(source, *, split, hub_config, csv_fieldnames):
    if not isinstance(source, (str, os.PathLike)) or not os.fspath(source):
        raise HelloraError(f"dataset source must be a file path or hub dataset id, got {source!r}")
    if is_hub_id(source):
        yield from _read_hub(os.fspath(source), split=split, config=hub_config)
        return
    path = Path(source)
    if not path.exists():
        raise HelloraError(f"dataset file not found: {path}")
    if path.is_dir():
        raise HelloraError(f"dataset path {path} is a directory; give a .json, .jsonl or .csv file (optionally .gz)")
    fmt = _format_of(path)
    if fmt is None:
        known = ", ".join(sorted(LOCAL_FORMATS))
        raise HelloraError(f"dataset file {path} has an unsupported extension; use one of {known} (optionally + .gz)")
    text = _read_text(path)
    if fmt == "json":
        yield from _read_json(path, text)
    elif fmt == "jsonl":
        yield from _read_jsonl(path, text)
    else:
        yield from _read_csv(path, text, csv_fieldnames)


def _read_text(path: Path) -> str:
    try:
        if path.suffix.lower() == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError) as e:  # gzip.BadGzipFile is an OSError; a truncated stream is an EOFError
        raise HelloraError(f"cannot read dataset file {path}: {e}") from None
    try:
        # utf-8-sig: tolerate the byte-order mark that spreadsheet tools put in front of CSV exports.
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise HelloraError(f"dataset file {path} line {line} is not valid UTF-8") from None


def _read_json(path: Path, text: str):
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        hint = " (one object per line? name the file .jsonl)" if e.msg == "Extra data" else ""
        raise HelloraError(
            f"dataset file {path} is not valid JSON (line {e.lineno}, column {e.colno}): {e.msg}{hint}"
        ) from None
    if isinstance(data, dict):
        key = next((k for k in JSON_LIST_KEYS if k in data), None)
        if key is None:
            keys = ", ".join(map(str, data)) or "none"
            raise HelloraError(
                f"dataset file {path} holds a JSON object; expected a list of records or an object with a "
                f"{' or '.join(repr(k) for k in JSON_LIST_KEYS)} list (keys found: {keys})"
            )
        data = data[key]
        prefix = f"dataset file {path} field '{key}'"
    else:
        prefix = f"dataset file {path}"
    if not isinstance(data, list):
        raise HelloraError(f"{prefix} must be a list of records, got {type(data).__name__}")
    for i, record in enumerate(data, start=1):
        yield f"dataset file {path} record {i}", record


def _read_jsonl(path: Path, text: str):
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise HelloraError(
                f"dataset file {path} line {lineno} is not valid JSON (column {e.colno}): {e.msg}"
            ) from None
        yield f"dataset file {path} line {lineno}", record


def _read_csv(path: Path, text: str, fieldnames: Sequence[str] | None):
    reader = csv.reader(io.StringIO(text, newline=""))
    header = list(fieldnames) if fieldnames is not None else None
    if header is not None and not header:
        raise HelloraError("csv_fieldnames must name at least one column")
    try:
        for row in reader:
            lineno = reader.line_num  # last physical line of this row (quoted fields may span lines)
            if not row or all(not cell.strip() for cell in row):
                continue
            if header is None:
                header = [cell.strip() for cell in row]
                if len(set(header)) != len(header):
                    raise HelloraError(f"dataset file {path} line {lineno}: CSV header repeats a column name: {row}")
                continue
            if len(row) != len(header):
                raise HelloraError(
                    f"dataset file {path} line {lineno} has {len(row)} CSV columns, expected {len(header)} "
                    f"({', '.join(header)})"
                )
            yield f"dataset file {path} line {lineno}", dict(zip(header, row))
    except csv.Error as e:
        raise HelloraError(f"dataset file {path} line {reader.line_num} is not valid CSV: {e}") from None


def _read_hub(dataset_id: str, *, split: str, config: str | None):
    try:
        import datasets  # lazy: only hub runs need it
    except ImportError:
        raise HelloraError(
            f"'{dataset_id}' is not a local file, so it would be read from the Hugging Face hub, which needs the "
            "`datasets` package: pip install datasets"
        ) from None
    try:
        ds = datasets.load_dataset(dataset_id, config, split=split)
    except Exception as e:  # noqa: BLE001 - offline, unknown id, gated, bad split: all user-facing here
        what = f"hub dataset '{dataset_id}'" + (f" (config '{config}')" if config else "") + f" split '{split}'"
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise HelloraError(
            f"could not load {what}: {first}. If there is no network, download it elsewhere and pass a local "
            ".json/.jsonl/.csv file instead"
        ) from None
    for i, record in enumerate(ds, start=1):
        yield f"hub dataset '{dataset_id}' split '{split}' record {i}", dict(record)
