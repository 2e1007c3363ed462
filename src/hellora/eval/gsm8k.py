"""GSM8K answer extraction and scoring (pure functions; generation happens elsewhere).

Why three extractors: published GSM8K numbers depend heavily on how the answer is pulled out of free text.
We report them side by side on the same completions:

* ``paper`` -- the HELLoRA zero-shot protocol: the first number after "The final answer is" (any case,
  optional colon, with ``$``, ``**``, ``\\boxed{`` and a trailing period tolerated); if the phrase is absent
  or has no number after it, the last number in the completion.
* ``strict`` -- lm-evaluation-harness style "strict-match": the number right after ``#### `` (the format of
  GSM8K's own reference answers, which few-shot prompts teach).
* ``flexible`` -- lm-evaluation-harness style "flexible-extract": the last number anywhere in the text.

These follow those protocols' behaviour but are our own regexes, so a few corner cases can differ from
lm-eval's exact output. Numbers: an optional minus sign, thousands separators (``1,000``) removed, an
optional decimal part; a number glued to letters on its left ("x2", "COVID19", "mp3") is not a number,
one with a unit on its right ("10km") is. Comparison is numeric and exact (Decimal): "18.0" == "18".
The gold answer is the number after ``####`` in GSM8K's ``answer`` field.
"""

from __future__ import annotations

import json
import os
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Iterable, Mapping

from hellora.utils.errors import HelloraError
from hellora.utils.io import iter_jsonl
from hellora.utils.io import atomic_write_text

__all__ = [
    "EXTRACTORS",
    "extract_paper",
    "extract_strict",
    "extract_flexible",
    "extract_gold",
    "parse_number",
    "numbers_equal",
    "score_gsm8k",
    "load_gsm8k_jsonl",
    "evaluate_gsm8k_predictions",
]

EXTRACTORS = ("paper", "strict", "flexible")

# A number: not glued to a letter/digit/underscore/dot on its left; optional sign (ASCII or U+2212);
# digits with optional ",ddd" groups and an optional fraction, or a bare ".5".
_NUMBER = re.compile(r"(?<![\w.])([-\u2212]?)((?:\d+(?:,\d{3})*)(?:\.\d+)?|\.\d+)")
_FINAL = re.compile(r"the\s+final\s+answer\s+is", re.IGNORECASE)
_STRICT = re.compile(r"####\s*([-\u2212]?[0-9.,]+)")


def parse_number(text: str) -> Decimal | None:
    """'1,234.50' -> Decimal('1234.50'); '$-3.' -> -3; None if there is no number in `text`."""
    m = _NUMBER.search(text)
    if m is None:
        return None
    return _to_decimal(m.group(1), m.group(2))


def _to_decimal(sign: str, digits: str) -> Decimal | None:
    try:
        value = Decimal(digits.replace(",", ""))
    except InvalidOperation:
        return None
    return -value if sign else value


def _all_numbers(text: str) -> list[Decimal]:
    out = []
    for m in _NUMBER.finditer(text):
        value = _to_decimal(m.group(1), m.group(2))
        if value is not None:
            out.append(value)
    return out


def extract_flexible(completion: str) -> Decimal | None:
    """The last number in the text (lm-eval "flexible-extract" behaviour)."""
    numbers = _all_numbers(completion)
    return numbers[-1] if numbers else None


def extract_strict(completion: str) -> Decimal | None:
    """The number right after the first '#### ' (lm-eval "strict-match" behaviour); None if absent."""
    m = _STRICT.search(completion)
    if m is None:
        return None
    raw = m.group(1).rstrip(".,")  # "#### 72." -> 72
    sign = "-" if raw[:1] in ("-", "\u2212") else ""
    return _to_decimal(sign, raw.lstrip("-\u2212")) if raw.lstrip("-\u2212") else None


def extract_paper(completion: str) -> Decimal | None:
    """First number after 'The final answer is' (any case, ':', '$', '**', trailing '.' tolerated);
    else the last number in the completion."""
    m = _FINAL.search(completion)
    if m is not None:
        value = parse_number(completion[m.end() :])
        if value is not None:
            return value
    return extract_flexible(completion)


_EXTRACT = {"paper": extract_paper, "strict": extract_strict, "flexible": extract_flexible}


def extract_gold(answer: str) -> Decimal | None:
    """The reference number: what follows '####' in GSM8K's answer field."""
    head, sep, tail = answer.rpartition("####")
    if not sep:
        return None
    return parse_number(tail)


def numbers_equal(a: Decimal | None, b: Decimal | None) -> bool:
    """Exact numeric equality; a missing prediction is never correct."""
    return a is not None and b is not None and a == b


def _json_number(value: Decimal | None) -> int | float | None:
    if value is None:
        return None
    return int(value) if value == value.to_integral_value() else float(value)


def score_gsm8k(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Score completions. Each record needs "completion" and either "answer" (GSM8K's answer field, ending
    in '#### N') or "gold" (the number itself). Returns {"n", "accuracy": {extractor: fraction},
    "correct": {extractor: count}, "items": [per-record predictions and correctness]}."""
    items = []
    correct = {name: 0 for name in EXTRACTORS}
    for i, rec in enumerate(records):
        where = f"record {i}" + (f" (line {rec['_line']})" if isinstance(rec, Mapping) and "_line" in rec else "")
        if not isinstance(rec, Mapping):
            raise HelloraError(f"gsm8k {where}: expected an object, got {type(rec).__name__}")
        completion = rec.get("completion")
        if not isinstance(completion, str):
            raise HelloraError(f"gsm8k {where}: missing string field 'completion'")
        if "gold" in rec and rec["gold"] is not None:
            gold = parse_number(str(rec["gold"]))
        elif isinstance(rec.get("answer"), str):
            gold = extract_gold(rec["answer"])
        else:
            raise HelloraError(f"gsm8k {where}: needs 'answer' (with '#### N') or 'gold'")
        if gold is None:
            raise HelloraError(f"gsm8k {where}: no gold number found (expected '#### N' in 'answer')")
        item: dict[str, Any] = {"index": i, "gold": _json_number(gold)}
        for key in ("id", "question"):
            if key in rec:
                item[key] = rec[key]
        for name in EXTRACTORS:
            pred = _EXTRACT[name](completion)
            ok = numbers_equal(pred, gold)
            correct[name] += ok
            item[f"pred_{name}"] = _json_number(pred)
            item[f"correct_{name}"] = ok
        items.append(item)
    n = len(items)
    return {
        "n": n,
        "accuracy": {name: (correct[name] / n if n else 0.0) for name in EXTRACTORS},
        "correct": correct,
        "items": items,
    }


def _read_jsonl(path: str | os.PathLike, what: str) -> list[dict[str, Any]]:
    return [{**row, "_line": lineno} for lineno, row in iter_jsonl(path, what)]


def load_gsm8k_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Read GSM8K's question/answer JSONL. Malformed JSON or a missing/non-string field -> HelloraError
    naming the file and line. Each row is {"question", "answer", "_line"}."""
    rows = _read_jsonl(path, "GSM8K file")
    for row in rows:
        for key in ("question", "answer"):
            if not isinstance(row.get(key), str):
                raise HelloraError(f"GSM8K file {path} line {row['_line']}: missing string field '{key}'")
        if extract_gold(row["answer"]) is None:
            raise HelloraError(f"GSM8K file {path} line {row['_line']}: 'answer' has no '#### N' final answer")
    return [{"question": r["question"], "answer": r["answer"], "_line": r["_line"]} for r in rows]


def evaluate_gsm8k_predictions(
    predictions_path: str | os.PathLike,
    dataset_path: str | os.PathLike | None = None,
    *,
    results_path: str | os.PathLike | None = None,
) -> dict[str, Any]:
    """Score a predictions JSONL ({"completion", and "answer" or "gold", or a "question" found in
    `dataset_path`}) and write per-item results next to it (`<predictions>_results.jsonl`, atomically).
    Returns the summary of `score_gsm8k` without the items, plus "results_path"."""
    preds = _read_jsonl(predictions_path, "GSM8K predictions")
    gold_by_question: dict[str, str] = {}
    if dataset_path is not None:
        gold_by_question = {row["question"]: row["answer"] for row in load_gsm8k_jsonl(dataset_path)}
    for row in preds:
        if "answer" not in row and "gold" not in row:
            q = row.get("question")
            if not isinstance(q, str) or q not in gold_by_question:
                raise HelloraError(
                    f"GSM8K predictions {predictions_path} line {row['_line']}: no 'answer'/'gold', and its "
                    "'question' is " + ("missing" if not isinstance(q, str) else "not in the dataset file")
                )
            row["answer"] = gold_by_question[q]
    summary = score_gsm8k(preds)
    out = Path(results_path) if results_path is not None else Path(f"{predictions_path}_results.jsonl")
    lines = []
    for row, item in zip(preds, summary["items"]):
        merged = {k: v for k, v in row.items() if k != "_line"}
        merged.update({k: v for k, v in item.items() if k not in ("index", "question")})
        lines.append(json.dumps(merged, ensure_ascii=False))
    atomic_write_text(out, "\n".join(lines) + ("\n" if lines else ""))
    result = {k: v for k, v in summary.items() if k != "items"}
    result["results_path"] = str(out)
    return result
