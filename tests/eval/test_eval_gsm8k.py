"""GSM8K extraction and scoring against hand-made cases with known answers."""

import json
from decimal import Decimal
from pathlib import Path

import pytest

from hellora.eval.gsm8k_scoring import (
    evaluate_gsm8k_predictions,
    extract_gold,
    extract_lm_eval_flexible,
    extract_lm_eval_strict,
    extract_robust,
    load_gsm8k_jsonl,
    score_gsm8k,
)
from hellora.utils.errors import HelloraError
from tests.conftest import DATASETS

GSM8K_TEST = DATASETS / "gsm8k/test.jsonl"


@pytest.mark.parametrize(
    "text,expected",
    [
        ("The final answer is: $1,234.50.", Decimal("1234.5")),
        ("Work... **The final answer is 18**", Decimal(18)),
        ("the FINAL answer is -3.", Decimal(-3)),
        ("The final answer is $\\boxed{42}$", Decimal(42)),
        ("The final answer is 18.0", Decimal(18)),
        ("She has 5 apples, then 7 more. The final answer is 12. Next question: 99 pears", Decimal(12)),
        # no phrase: last number
        ("16 - 3 - 4 = 9 eggs, 9 * 2 = 18 dollars", Decimal(18)),
        # phrase without a number after it: last number overall
        ("It costs 7 dollars. The final answer is unclear", Decimal(7)),
        ("1,000 people came", Decimal(1000)),
        ("the change was \u22125", Decimal(-5)),
        ("no number at all", None),
        ("", None),
        # numbers glued to letters are not numbers; a unit after a number is fine
        ("model x2 on COVID19 data", None),
        ("ran 10km in total", Decimal(10)),
        # a hyphen between numbers is not a minus sign
        ("16-3-4", Decimal(4)),
    ],
)
def test_extract_robust(text, expected):
    assert extract_robust(text) == expected


@pytest.mark.parametrize(
    "text,expected",
    [
        ("#### 72", "72"),
        ("blah\n#### 1,234", "1,234"),
        ("#### -3.", "-3."),
        ("#### 72\n#### 5", "72"),  # first occurrence
        ("The answer is 72", "[invalid]"),
        ("####72", "[invalid]"),  # lm-eval needs the space
    ],
)
def test_extract_lm_eval_strict(text, expected):
    assert extract_lm_eval_strict(text) == expected


@pytest.mark.parametrize(
    "text,expected",
    [("a 1 b 2 c 3.5", "3.5"), ("#### 72", "72"), ("nothing", "[invalid]"), ("v2 only", "2"),
     ("costs $18.00", "$18.00"), ("25 ...", "..."), ("x 7", "7")],
)
def test_extract_lm_eval_flexible(text, expected):
    assert extract_lm_eval_flexible(text) == expected


def test_extract_gold():
    assert extract_gold("She makes 9 * 2 = $<<9*2=18>>18.\n#### 18") == Decimal(18)
    assert extract_gold("#### 1,000") == Decimal(1000)
    assert extract_gold("no marker 5") is None


def test_score_gsm8k_four_columns():
    records = [
        {"answer": "... #### 18", "completion": "so 18 dollars. The final answer is 18."},
        {"answer": "... #### 18", "completion": "The final answer is 18 because 3 more\n#### 18\nQuestion 2: 7 apples"},
        {"answer": "#### 5", "completion": "The final answer is 5. Then 6"},
        {"gold": "1,000", "completion": "#### 1000.0"},
        {"answer": "#### 3", "completion": "I don't know", "prompt": "Tom has 3 apples.\n"},
    ]
    out = score_gsm8k(records)
    assert out["n"] == 5
    # lori: float of the last number unless "The final answer is: " (with colon) occurs -> 18, 7, 6, 1000.0, and
    # record 4's number-free completion is scored by the prompt's last number (3): correct
    assert out["correct"] == {"lori": 3, "robust": 4, "lm-eval-strict": 1, "lm-eval-flexible": 1}
    assert out["accuracy"]["robust"] == pytest.approx(0.8)
    assert out["items"][0]["pred_robust"] == 18 and out["items"][0]["pred_lm-eval-strict"] == "[invalid]"
    assert out["items"][2]["pred_lm-eval-flexible"] == "6" and out["items"][2]["correct_robust"] is True
    assert out["items"][3]["correct_lm-eval-strict"] is False  # "1000.0" != "1000" as strings
    assert out["items"][4]["pred_robust"] is None and out["items"][4]["correct_lori"] is True


def test_score_gsm8k_errors_name_the_record():
    with pytest.raises(HelloraError, match="record 1.*completion"):
        score_gsm8k([{"answer": "#### 1", "completion": "1"}, {"answer": "#### 1"}])
    with pytest.raises(HelloraError, match="record 0.*gold"):
        score_gsm8k([{"answer": "no marker", "completion": "1"}])


@pytest.mark.full_datasets
def test_load_real_gsm8k_test_split():
    rows = load_gsm8k_jsonl(GSM8K_TEST)
    assert len(rows) == 1319
    assert extract_gold(rows[0]["answer"]) == Decimal(18)  # Janet's ducks


def test_load_gsm8k_errors_name_the_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"question": "q", "answer": "#### 1"}\n\n{not json}\n')
    with pytest.raises(HelloraError, match=r"line 3"):
        load_gsm8k_jsonl(bad)
    missing = tmp_path / "missing.jsonl"
    missing.write_text('{"question": "q", "answer": "#### 1"}\n{"question": "q2"}\n')
    with pytest.raises(HelloraError, match=r"line 2.*'answer'"):
        load_gsm8k_jsonl(missing)
    with pytest.raises(HelloraError, match="not found"):
        load_gsm8k_jsonl(tmp_path / "nope.jsonl")


def test_evaluate_predictions_file_joins_dataset_by_question(tmp_path):
    data = tmp_path / "test.jsonl"
    data.write_text(
        json.dumps({"question": "q1", "answer": "x #### 4"}) + "\n" + json.dumps({"question": "q2", "answer": "#### 7"}) + "\n"
    )
    preds = tmp_path / "preds.jsonl"
    preds.write_text(
        json.dumps({"question": "q1", "completion": "The final answer is 4"})
        + "\n"
        + json.dumps({"question": "q2", "completion": "#### 8"})
        + "\n"
    )
    out = evaluate_gsm8k_predictions(preds, data)
    assert out["n"] == 2 and out["correct"]["robust"] == 1
    rows = [json.loads(x) for x in Path(out["results_path"]).read_text().splitlines()]
    assert [r["correct_robust"] for r in rows] == [True, False]
    preds.write_text(json.dumps({"question": "unknown", "completion": "1"}) + "\n")
    with pytest.raises(HelloraError, match="line 1"):
        evaluate_gsm8k_predictions(preds, data)
