"""HumanEval scoring through the real sandbox, on the real 164 problems (read by path, never copied)."""

import gzip
import json
from dataclasses import replace
from pathlib import Path

import pytest

from hellora.eval.humaneval import build_program, evaluate_humaneval_samples, load_humaneval_problems, read_samples
from hellora.eval.run import resolve_protocol
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


# --------------------------------------------------------------------------------------------------------
# human-eval's own sample format, the protocol record and the results file's overwrite policy (issue 26)
# --------------------------------------------------------------------------------------------------------


def test_human_eval_format_samples_refused_under_lori_and_scored_under_human_eval(problems, tmp_path, capsys):
    from hellora.cli import main

    few = list(problems.items())[:6]
    samples = write_jsonl(tmp_path / "s.jsonl", [{"task_id": t, "completion": p["canonical_solution"]} for t, p in few])
    code = main(["eval", "humaneval", "--samples", str(samples), "--problems", str(HUMANEVAL), "--pass-k", "1",
                 "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "6 of 6 completions" in err and "--protocol human-eval" in err
    assert not Path(f"{samples}_results.jsonl").exists()  # refused before anything ran or was written

    assert main(["eval", "humaneval", "--samples", str(samples), "--problems", str(HUMANEVAL), "--pass-k", "1",
                 "--protocol", "human-eval", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["pass@1"] == 1.0 and summary["protocol"] == "human-eval"
    assert summary["prompt_layout"] == "unstripped"
    results = Path(f"{samples}_results.jsonl")
    rows = [json.loads(x) for x in results.read_text().splitlines()]
    assert {(r["protocol"], r["prompt_layout"]) for r in rows} == {("human-eval", "unstripped")}

    before = results.read_bytes()
    code = main(["eval", "humaneval", "--samples", str(samples), "--problems", str(HUMANEVAL), "--pass-k", "1",
                 "--protocol", "human-eval"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "already exists" in err and "--overwrite" in err and results.read_bytes() == before
    assert main(["eval", "humaneval", "--samples", str(samples), "--problems", str(HUMANEVAL), "--pass-k", "1",
                 "--protocol", "human-eval", "--overwrite", "--no-progress"]) == 0


def test_lori_format_samples_score_under_the_default_protocol(problems, tmp_path):
    few = list(problems.items())[:6]
    # the stripped prompt ends on the docstring's closing quotes: the model writes the newline itself
    samples = write_jsonl(tmp_path / "s.jsonl",
                          [{"task_id": t, "completion": "\n" + p["canonical_solution"]} for t, p in few])
    lori = replace(resolve_protocol("humaneval", "lori"), timeout=10.0)  # stripped prompts
    out = evaluate_humaneval_samples(samples, HUMANEVAL, ks=(1,), progress=False, protocol=lori)
    assert out["pass@1"] == 1.0 and out["protocol"] == "lori" and out["prompt_layout"] == "stripped"


def test_a_few_human_eval_bodies_among_lori_samples_are_scored_not_refused(problems, tmp_path):
    few = list(problems.items())[:3]
    rows = [{"task_id": t, "completion": "\n" + p["canonical_solution"]} for t, p in few]
    rows.append({"task_id": few[0][0], "completion": few[0][1]["canonical_solution"]})  # one stray body
    lori = replace(resolve_protocol("humaneval", "lori"), timeout=10.0)  # stripped prompts
    out = evaluate_humaneval_samples(write_jsonl(tmp_path / "s.jsonl", rows), HUMANEVAL, ks=(1,), progress=False,
                                     protocol=lori)
    assert out["n_samples"] == 4 and out["status_counts"] == {"passed": 3, "failed": 1}


# --------------------------------------------------------------------------------------------------------
# The sandbox works from any install location, and a broken harness stops the evaluation (issue 26)
# --------------------------------------------------------------------------------------------------------


def test_scoring_from_a_mode_700_install(tmp_path):
    """A copy of the package in a mode-700 folder, scored in a subprocess as the CI runs it (as root the sample
    runs under a dropped uid that cannot read that folder: the driver must not be read from it)."""
    import os
    import shutil
    import subprocess
    import sys
    import tempfile

    import hellora

    install = Path(tempfile.mkdtemp(prefix="hellora-700-"))
    try:
        install.chmod(0o700)
        shutil.copytree(Path(hellora.__file__).parent, install / "hellora",
                        ignore=shutil.ignore_patterns("__pycache__"))
        _, problems_path = _toy_files(tmp_path)
        samples = write_jsonl(tmp_path / "s.jsonl", [{"task_id": "toy/inc", "completion": c}
                                                      for c in ("    return x + 1\n", "    return x\n")])
        code = ("import json, sys, hellora\nfrom hellora.eval.humaneval import evaluate_humaneval_samples\n"
                "out = evaluate_humaneval_samples(sys.argv[1], sys.argv[2], ks=(1,), progress=False)\n"
                "print(json.dumps({'file': hellora.__file__, 'pass@1': out['pass@1'], "
                "'status': out['status_counts'], 'uid_dropped': out['protections'].get('uid_dropped')}))\n")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["PYTHONPATH"] = str(install)
        run = subprocess.run([sys.executable, "-c", code, str(samples), str(problems_path)], capture_output=True,
                             text=True, env=env, cwd=str(tmp_path), timeout=120)
        assert run.returncode == 0, run.stderr[-2000:]
        out = json.loads(run.stdout.strip().splitlines()[-1])
        assert out["file"].startswith(str(install))
        assert out["pass@1"] == 0.5 and out["status"] == {"passed": 1, "failed": 1}
        if os.geteuid() == 0:
            assert out["uid_dropped"] is True
    finally:
        shutil.rmtree(install, ignore_errors=True)


def _toy_files(tmp_path):
    toy = {"task_id": "toy/inc", "prompt": 'def inc(x):\n    """x + 1"""\n', "canonical_solution": "    return x + 1\n",
           "test": "def check(candidate):\n    assert candidate(1) == 2\n", "entry_point": "inc"}
    return (write_jsonl(tmp_path / "s.jsonl", [{"task_id": "toy/inc", "completion": "    return x + 1\n"}]),
            write_jsonl(tmp_path / "p.jsonl", [toy]))


@pytest.mark.parametrize("breakage", ["checker_always_passes", "driver_never_answers", "sample_cannot_start"])
def test_the_self_test_catches_a_broken_harness(tmp_path, monkeypatch, breakage):
    import hellora.eval.sandbox.checked as checked
    import hellora.eval.sandbox.runner as runner
    from hellora.eval.sandbox import Sandbox

    samples, problems_path = _toy_files(tmp_path)
    sandbox = None
    if breakage == "checker_always_passes":
        fake = 'import sys, json\nsys.stdin.read()\nprint(json.dumps({"passed": True}))\n'
        monkeypatch.setattr(checked, "checker_source", lambda: fake)
    elif breakage == "driver_never_answers":
        monkeypatch.setattr(runner, "driver_source", lambda: "import sys\nsys.exit(0)\n")
    else:  # the sample's interpreter cannot be started: a launcher error for every sample
        sandbox = Sandbox(namespaces=False, require=("net_namespace",))
    with pytest.raises(HelloraError, match="self-test failed") as err:
        evaluate_humaneval_samples(samples, problems_path, ks=(1,), progress=False, sandbox=sandbox)
    assert "\n" not in str(err.value)
    assert not Path(f"{samples}_results.jsonl").exists()


def test_a_harness_error_during_scoring_stops_the_evaluation(tmp_path, monkeypatch):
    import hellora.eval.humaneval as humaneval
    from hellora.eval.sandbox import Sandbox

    samples, problems_path = _toy_files(tmp_path)
    monkeypatch.setattr(humaneval, "self_test", lambda sandbox: None)  # let a broken harness reach the samples
    with pytest.raises(HelloraError, match=r"sandbox failed on 1 sample.*line 1.*net_namespace"):
        evaluate_humaneval_samples(samples, problems_path, ks=(1,), progress=False,
                                   sandbox=Sandbox(namespaces=False, require=("net_namespace",)))
    assert not Path(f"{samples}_results.jsonl").exists()
