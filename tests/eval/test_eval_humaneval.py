"""HumanEval scoring through the real sandbox, on the real 164 problems (read by path, never copied)."""

import gzip
import json
from pathlib import Path

import pytest

from hellora.eval.humaneval import build_program, evaluate_humaneval_samples, load_humaneval_problems, read_samples
from hellora.utils.errors import HelloraError
from tests.conftest import DATASETS

HUMANEVAL = DATASETS / "humaneval/HumanEval.jsonl.gz"

pytestmark = pytest.mark.skipif(not HUMANEVAL.is_file(), reason=f"HumanEval data not at {HUMANEVAL}")


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def problems():
    return load_humaneval_problems(HUMANEVAL)


@pytest.mark.full_datasets
def test_load_problems(problems):
    assert len(problems) == 164
    first = problems["HumanEval/0"]
    assert first["entry_point"] == "has_close_elements"


def test_build_program_layout(problems):
    p = problems["HumanEval/0"]
    prog = build_program(p, "    return False\n")
    assert prog == p["prompt"] + "    return False\n" + "\n" + p["test"] + "\n" + "check(has_close_elements)"


def test_canonical_solutions_all_pass_and_empty_all_fail(problems, tmp_path):
    canonical = write_jsonl(
        tmp_path / "canonical.jsonl",
        [{"task_id": t, "completion": p["canonical_solution"], "extra": i} for i, (t, p) in enumerate(problems.items())],
    )
    empty = write_jsonl(tmp_path / "empty.jsonl", [{"task_id": t, "completion": ""} for t in problems])

    good = evaluate_humaneval_samples(canonical, HUMANEVAL, ks=(1,), workers=4, progress=False)
    failures = [t for t in good["per_task"] if t["correct"] != 1]
    assert failures == [], failures
    assert good["pass@1"] == 1.0
    n = len(problems)  # 164 with the full file, 24 with the fixture of tests/assets
    assert good["n_samples"] == n and good["n_problems"] == n
    assert good["status_counts"] == {"passed": n}
    results_path = Path(good["results_path"])
    assert results_path == Path(str(canonical) + "_results.jsonl")
    rows = [json.loads(x) for x in results_path.read_text().splitlines()]
    assert len(rows) == n and all(r["passed"] and r["result"] == "passed" for r in rows)
    assert rows[5]["extra"] == 5  # the sample's own fields are kept

    bad = evaluate_humaneval_samples(empty, HUMANEVAL, ks=(1,), workers=4, progress=False)
    assert bad["pass@1"] == 0.0
    assert bad["status_counts"] == {"failed": n}
    # On Linux the namespaces must have held for every sample (recorded, and reported to the caller).
    assert isinstance(bad["protections"]["rlimits"], bool) and bad["protections"]["rlimits"]


def test_pass_at_k_with_several_samples_per_task(tmp_path):
    probs = [
        {"task_id": "toy/0", "prompt": "def inc(x):\n", "canonical_solution": "    return x + 1\n",
         "test": "def check(candidate):\n    assert candidate(1) == 2\n", "entry_point": "inc"},
        {"task_id": "toy/1", "prompt": "def neg(x):\n", "canonical_solution": "    return -x\n",
         "test": "def check(candidate):\n    assert candidate(3) == -3\n", "entry_point": "neg"},
    ]
    problems_path = write_jsonl(tmp_path / "toy.jsonl", probs)
    right0, wrong0 = "    return x + 1\n", "    return x\n"
    samples = [{"task_id": "toy/0", "completion": c} for c in [right0, wrong0, right0, wrong0, wrong0]]
    samples += [{"task_id": "toy/1", "completion": "    return x\n"} for _ in range(5)]
    samples_path = write_jsonl(tmp_path / "samples.jsonl", samples)
    out = evaluate_humaneval_samples(samples_path, problems_path, ks=(1, 5, 10), workers=4, progress=False)
    assert out["pass@1"] == pytest.approx((2 / 5 + 0) / 2)
    assert out["pass@5"] == pytest.approx((1.0 + 0) / 2)
    assert "pass@10" not in out and out["skipped_ks"] == [10]
    assert out["n_problems"] == 2 and out["n_samples"] == 10
    per = {t["task_id"]: t for t in out["per_task"]}
    assert per["toy/0"]["correct"] == 2 and per["toy/0"]["pass@10"] is None


def test_sample_file_errors_name_the_line(problems, tmp_path):
    f = tmp_path / "s.jsonl"
    f.write_text('{"task_id": "HumanEval/0", "completion": ""}\n{"task_id": "Nope/1", "completion": ""}\n')
    with pytest.raises(HelloraError, match=r"line 2.*unknown task_id 'Nope/1'"):
        read_samples(f, problems)
    f.write_text('{"task_id": "HumanEval/0", "completion": ""}\n\n{"task_id": \n')
    with pytest.raises(HelloraError, match=r"line 3.*not valid JSON"):
        read_samples(f, problems)
    f.write_text('{"task_id": "HumanEval/0"}\n')
    with pytest.raises(HelloraError, match=r"line 1.*'completion'"):
        evaluate_humaneval_samples(f, HUMANEVAL, progress=False)


def test_problems_file_errors(tmp_path):
    f = tmp_path / "p.jsonl.gz"
    with gzip.open(f, "wt") as g:
        g.write(json.dumps({"task_id": "x", "prompt": "", "test": "", "entry_point": "f"}) + "\n")
    with pytest.raises(HelloraError, match=r"line 1.*canonical_solution"):
        load_humaneval_problems(f)
    with pytest.raises(HelloraError, match="not found"):
        load_humaneval_problems(tmp_path / "missing.jsonl")
