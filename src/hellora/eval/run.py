"""`hellora eval`: generate on a benchmark, save the generations, score them, write eval JSON.

    evaluate_task("gsm8k", model, tokenizer, data="test.jsonl", out_dir="runs/x/eval")

Protocols (the paper's): GSM8K test, zero-shot prompt, greedy, accuracy by three extractors; HumanEval, n=20
samples at temperature 0.2 / top-p 0.95, pass@1/5/10 through the sandbox; HEx-PHI or AdvBench, the instruction in
the Alpaca template, greedy, refusal rate of the continuation only. `cross_task` evaluates an adapter on several
tasks with and without its adapters (the paper's Appendix G).
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from pathlib import Path

from hellora.adapters import disable_adapters
from hellora.data import alpaca_prompt, gsm8k_prompt
from hellora.eval.generation import SamplingSettings, generate_hf, generate_vllm, write_generations
from hellora.utils.errors import HelloraError
from hellora.utils.io import atomic_write_json, read_json
from hellora.utils.meta import run_metadata

EVAL_TASKS = ("gsm8k", "humaneval", "hexphi", "advbench")
HUMANEVAL_STOP = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")
DEFAULTS = {
    "gsm8k": SamplingSettings(max_new_tokens=512),
    "humaneval": SamplingSettings(max_new_tokens=512, do_sample=True, temperature=0.2, top_p=0.95, num_samples=20,
                                  stop=HUMANEVAL_STOP),
    "hexphi": SamplingSettings(max_new_tokens=256),
    "advbench": SamplingSettings(max_new_tokens=256),
}


def _load(task: str, data: str | None, limit: int | None) -> tuple[list[dict], list[str]]:
    """(records, prompts) of a benchmark."""
    if task == "gsm8k":
        from hellora.data import get_task

        records = get_task("gsm8k").load(data, split="test")
        records = [{"question": r["question"], "answer": r["answer"]} for r in records]
        prompts = [gsm8k_prompt(r["question"]) for r in records[:limit]]
    elif task == "humaneval":
        if not data:
            raise HelloraError("--data: HumanEval needs the problems file (HumanEval.jsonl.gz)")
        from hellora.eval.humaneval import load_humaneval_problems

        records = [{"task_id": t} for t in load_humaneval_problems(data)]
        prompts = [p["prompt"] for p in load_humaneval_problems(data).values()][:limit]
    elif task in ("hexphi", "advbench"):
        if not data:
            raise HelloraError(f"--data: {task} needs its prompts file (HEx-PHI is gated: download it yourself; "
                               f"AdvBench: harmful_behaviors.csv)")
        from hellora.eval.safety import load_advbench, load_hexphi

        rows = (load_hexphi if task == "hexphi" else load_advbench)(data)
        records = [{"instruction": r["prompt"], "category": r.get("category")} for r in rows]
        prompts = [alpaca_prompt(r["instruction"]) for r in records[:limit]]
    else:
        raise HelloraError(f"--task: unknown task {task!r}; choose one of {', '.join(EVAL_TASKS)}")
    return records[:limit], prompts


def _score(task: str, generations: Path, data: str | None, ks: tuple, progress: bool) -> dict:
    if task == "gsm8k":
        from hellora.eval.gsm8k import evaluate_gsm8k_predictions

        return evaluate_gsm8k_predictions(generations)
    if task == "humaneval":
        from hellora.eval.humaneval import evaluate_humaneval_samples

        return evaluate_humaneval_samples(generations, data, ks=ks, progress=progress)
    from hellora.eval.safety import evaluate_refusal_predictions

    return evaluate_refusal_predictions(generations)


def evaluate_task(task: str, model, tokenizer, *, out_dir: str | Path, data: str | None = None,
                  limit: int | None = None, settings: SamplingSettings | None = None, batch_size: int = 8,
                  backend: str = "hf", merged_dir: str | None = None, ks: tuple = (1, 5, 10), tag: str = "",
                  progress: bool = True, overwrite: bool = False, sources: dict | None = None) -> dict:
    """Generate, save `<task><tag>_generations.jsonl`, score, save `eval_<task><tag>.json`; returns the latter."""
    out = Path(out_dir)
    result_path = out / f"eval_{task}{tag}.json"
    if result_path.exists() and not overwrite:
        raise HelloraError(f"{result_path} exists; choose another --out or pass --overwrite")
    settings = settings or DEFAULTS[task]
    records, prompts = _load(task, data, limit)
    start = time.perf_counter()
    if backend == "vllm":
        completions = generate_vllm(merged_dir, prompts, settings)
    elif backend == "hf":
        completions = generate_hf(model, tokenizer, prompts, settings, batch_size=batch_size, progress=progress,
                                  desc=f"{task}{tag}")
    else:
        raise HelloraError(f"--backend: choose hf or vllm, got {backend!r}")
    generation_s = time.perf_counter() - start
    generations = write_generations(out / f"{task}{tag}_generations.jsonl", records, prompts, completions, settings)
    scores = _score(task, generations, data, ks, progress)
    report = {"task": task, "scores": {k: v for k, v in scores.items() if k != "per_task"},
              "settings": asdict(settings), "examples": len(prompts), "generation_s": round(generation_s, 2),
              "files": {"data": data, "generations": str(generations), **(sources or {})}, "meta": run_metadata()}
    atomic_write_json(result_path, report)
    return report


def headline(report: dict) -> dict:
    """The number(s) the paper reports for a task."""
    s = report["scores"]
    if report["task"] == "gsm8k":
        return {"accuracy": s["accuracy"]["paper"]}
    if report["task"] == "humaneval":
        return {k: v for k, v in s.items() if k.startswith("pass@")}
    return {"refusal_rate": s["refusal_rate"]}


def write_eval_summary(out_dir: str | Path, reports: list[dict], sources: dict | None = None) -> Path:
    """`eval.json`: the headline scores, settings and files of every task evaluated in `out_dir`.

    Tasks already recorded there and not re-evaluated now are kept.
    """
    path = Path(out_dir) / "eval.json"
    summary = read_json(path, "eval summary") if path.is_file() else {"tasks": {}}
    for report in reports:
        summary["tasks"][report["task"]] = {"scores": headline(report), "settings": report["settings"],
                                            "files": report["files"], "examples": report["examples"]}
    summary.update(sources or {})
    summary["meta"] = run_metadata()
    return atomic_write_json(path, summary)


def cross_task(model, tokenizer, tasks: dict[str, str | None], *, out_dir: str | Path, limit: int | None = None,
               batch_size: int = 8, progress: bool = True, num_samples: int | None = None,
               max_new_tokens: int | None = None, overwrite: bool = False) -> dict:
    """Each task before (adapters off) and after (adapters on): the paper's Appendix G matrix."""
    matrix = {}
    for task, data in tasks.items():
        settings = DEFAULTS[task]
        if num_samples is not None:
            settings = replace(settings, num_samples=num_samples)
        if max_new_tokens is not None:
            settings = replace(settings, max_new_tokens=max_new_tokens)
        with disable_adapters(model):
            before = evaluate_task(task, model, tokenizer, out_dir=out_dir, data=data, limit=limit, settings=settings,
                                   batch_size=batch_size, tag="_before", progress=progress,
                                   overwrite=overwrite)
        after = evaluate_task(task, model, tokenizer, out_dir=out_dir, data=data, limit=limit, settings=settings,
                              batch_size=batch_size, tag="_after", progress=progress, overwrite=overwrite)
        matrix[task] = {"before": headline(before), "after": headline(after)}
    atomic_write_json(Path(out_dir) / "cross_task.json", {"matrix": matrix, "meta": run_metadata()})
    return matrix
