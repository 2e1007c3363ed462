r"""GSM8K answer extraction and scoring (pure functions; generation happens elsewhere).

Published GSM8K numbers depend heavily on how the answer is pulled out of free text, so every scorer is a named
column computed on the same generations (see docs/evaluation.md for the side-by-side table):

* ``lori`` -- LoRI's `eval_model.py` (the setup the HELLoRA paper follows), reproduced behaviour for behaviour:
  the text scored is the decoded *prompt + completion*; commas are deleted; numbers are ``-?\d+\.?\d*``; if the
  exact, case-sensitive ``"The final answer is: "`` occurs, the first number between its first and second
  occurrence is the answer, else (or if that stretch has no number) the last number of the whole text, else
  ``inf``. The gold is the same extraction on the training target (``answer.replace("####", ...)``). Comparison is
  float equality. Known flaws, kept on purpose and pinned by tests: a completion without numbers is scored by the
  last number of the *question*; a hyphen is a minus sign (``"16-3-4"`` gives -4); ``"the final answer is: 7"``
  (lower case) falls back to the last number.
* ``robust`` -- hellora's own: completion only; the first number after "The final answer is" in any case, colon
  optional, ``$``/``**``/``\boxed{`` tolerated; else the last number. Exact Decimal comparison.
* ``lm-eval-strict`` / ``lm-eval-flexible`` -- lm-evaluation-harness's `gsm8k` filters on the completion:
  strict is the first ``#### (-?[0-9.,]+)``, flexible the last match of ``(-?[$0-9.,]{2,})|(-?[0-9]+)``; then
  both prediction and gold lose ``,``, ``$``, everything up to ``#### `` and one trailing ``.``, are lower-cased
  and compared as strings (so ``$18.00`` and ``18.0`` are wrong against 18, as in lm-eval).

The gold answer for ``robust`` is the number after ``####`` in GSM8K's ``answer`` field.
"""

from __future__ import annotations

import json
import os
import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Iterable, Mapping

from hellora.data.tasks import GSM8K_ANSWER_PREFIX
from hellora.utils.errors import HelloraError
from hellora.utils.io import atomic_write_text, iter_jsonl

__all__ = [
    "EXTRACTORS",
    "LORI_ANSWER_PROMPT",
    "extract_lori",
    "lori_target",
    "extract_robust",
    "extract_lm_eval_strict",
    "extract_lm_eval_flexible",
    "lm_eval_normalise",
    "extract_gold",
    "parse_number",
    "numbers_equal",
    "score_gsm8k",
    "load_gsm8k_jsonl",
    "evaluate_gsm8k_predictions",
]

#: Scorer columns, in report order; the first is the headline.
EXTRACTORS = ("lori", "robust", "lm-eval-strict", "lm-eval-flexible")

#: LoRI's answer phrase: its training targets end "The final answer is:  N" (GSM8K's "####" replaced); the one
#: phrase training (`data.tasks`) writes and scoring looks for.
LORI_ANSWER_PROMPT = GSM8K_ANSWER_PREFIX

# A number: not glued to a letter/digit/underscore/dot on its left; optional sign (ASCII or U+2212);
# digits with optional ",ddd" groups and an optional fraction, or a bare ".5".
_NUMBER = re.compile(r"(?<![\w.])([-\u2212]?)((?:\d+(?:,\d{3})*)(?:\.\d+)?|\.\d+)")
_FINAL = re.compile(r"the\s+final\s+answer\s+is", re.IGNORECASE)
_LORI_NUMBER = re.compile(r"-?\d+\.?\d*")
_LM_EVAL_STRICT = re.compile(r"#### (\-?[0-9\.\,]+)")
_LM_EVAL_FLEXIBLE = re.compile(r"(-?[$0-9.,]{2,})|(-?[0-9]+)")
_LM_EVAL_IGNORE = (re.compile(","), re.compile(r"\$"), re.compile(r"(?s).*#### "), re.compile(r"\.$"))
LM_EVAL_INVALID = "[invalid]"


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


def extract_lori(text: str) -> float:
    """LoRI's GSM8K extraction on `text` (its decoded prompt + completion); ``inf`` when there is no number."""
    text = text.replace(",", "")
    numbers = _LORI_NUMBER.findall(text)
    if not numbers:
        return float("inf")
    pieces = text.split(LORI_ANSWER_PROMPT)
    if len(pieces) > 1:
        after = _LORI_NUMBER.findall(pieces[1])  # only up to a second occurrence of the phrase
        if after:
            return float(after[0])
    return float(numbers[-1])


def lori_target(answer: str) -> str:
    """LoRI's GSM8K training target and gold text: every '####' replaced by its answer phrase."""
    return answer.replace("####", LORI_ANSWER_PROMPT)


def extract_robust(completion: str) -> Decimal | None:
    """First number after 'The final answer is' (any case, ':', '$', '**', trailing '.' tolerated);
    else the last number in the completion."""
    m = _FINAL.search(completion)
    if m is not None:
        value = parse_number(completion[m.end() :])
        if value is not None:
            return value
    numbers = _all_numbers(completion)
    return numbers[-1] if numbers else None


def lm_eval_normalise(text: str) -> str:
    """lm-eval gsm8k's exact_match preprocessing: drop ',', '$', up to '#### ', one trailing '.'; lower-case."""
    for pattern in _LM_EVAL_IGNORE:
        text = pattern.sub("", text)
    return text.lower()


def extract_lm_eval_strict(completion: str) -> str:
    """lm-eval's strict-match filter: the first '#### N' capture, else '[invalid]'."""
    found = _LM_EVAL_STRICT.findall(completion)
    return found[0].strip() if found else LM_EVAL_INVALID


def extract_lm_eval_flexible(completion: str) -> str:
    """lm-eval's flexible-extract filter: the last match of either alternative, else '[invalid]'."""
    found = _LM_EVAL_FLEXIBLE.findall(completion)
    if not found:
        return LM_EVAL_INVALID
    groups = [g for g in found[-1] if g]
    return groups[0].strip() if groups else LM_EVAL_INVALID


def extract_gold(answer: str) -> Decimal | None:
    """The reference number: what follows '####' in GSM8K's answer field."""
    head, sep, tail = answer.rpartition("####")
    if not sep:
        return None
    return parse_number(tail)


def numbers_equal(a: Decimal | None, b: Decimal | None) -> bool:
    """Exact numeric equality; a missing prediction is never correct."""
    return a is not None and b is not None and a == b


def _json_number(value: Decimal | float | None) -> int | float | str | None:
    if value is None:
        return None
    if isinstance(value, float):
        return "inf" if value == float("inf") else (int(value) if value.is_integer() else value)
    return int(value) if value == value.to_integral_value() else float(value)


def score_one(prompt: str, completion: str, answer: str | None, gold: Decimal | None) -> dict[str, Any]:
    """{"pred_<column>", "correct_<column>"} for every column of `EXTRACTORS` on one sample.

    `answer` is GSM8K's answer field (needed by the lori and lm-eval columns); with only a `gold` number those
    columns compare against ``"#### <gold>"``.
    """
    answer = answer if answer is not None else f"#### {gold}"
    item: dict[str, Any] = {}
    lori_pred, lori_gold = extract_lori(prompt + completion), extract_lori(lori_target(answer))
    item.update(pred_lori=_json_number(lori_pred), correct_lori=lori_pred == lori_gold)
    robust = extract_robust(completion)
    item.update(pred_robust=_json_number(robust), correct_robust=numbers_equal(robust, gold))
    lm_gold = lm_eval_normalise(answer)
    for name, extract in (("lm-eval-strict", extract_lm_eval_strict), ("lm-eval-flexible", extract_lm_eval_flexible)):
        pred = extract(completion)
        item.update({f"pred_{name}": pred, f"correct_{name}": lm_eval_normalise(pred) == lm_gold})
    return item


def score_gsm8k(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Score completions under every column of `EXTRACTORS`.

    Each record needs "completion", either "answer" (GSM8K's answer field, ending in '#### N') or "gold" (the
    number itself), and, for the lori column, the "prompt" it was generated from (LoRI scores prompt +
    completion; without a prompt the completion alone is scored). Returns {"n", "accuracy": {column: fraction},
    "correct": {column: count}, "items": [per-record predictions and correctness]}.
    """
    items = []
    correct = {name: 0 for name in EXTRACTORS}
    for i, rec in enumerate(records):
        where = f"record {i}" + (f" (line {rec['_line']})" if isinstance(rec, Mapping) and "_line" in rec else "")
        if not isinstance(rec, Mapping):
            raise HelloraError(f"gsm8k {where}: expected an object, got {type(rec).__name__}")
        completion = rec.get("completion")
        if not isinstance(completion, str):
            raise HelloraError(f"gsm8k {where}: missing string field 'completion'")
        prompt = rec.get("prompt", "")
        if not isinstance(prompt, str):
            raise HelloraError(f"gsm8k {where}: field 'prompt' must be a string")
        answer = rec.get("answer") if isinstance(rec.get("answer"), str) else None
        if "gold" in rec and rec["gold"] is not None:
            gold = parse_number(str(rec["gold"]))
        elif answer is not None:
            gold = extract_gold(answer)
        else:
            raise HelloraError(f"gsm8k {where}: needs 'answer' (with '#### N') or 'gold'")
        if gold is None:
            raise HelloraError(f"gsm8k {where}: no gold number found (expected '#### N' in 'answer')")
        item: dict[str, Any] = {"index": i, "gold": _json_number(gold)}
        for key in ("id", "question"):
            if key in rec:
                item[key] = rec[key]
        item.update(score_one(prompt, completion, answer, gold))
        for name in EXTRACTORS:
            correct[name] += item[f"correct_{name}"]
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
