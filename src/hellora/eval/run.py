"""`hellora eval`, the pipeline's eval step and the cross-task matrix: generate, save, score, write eval JSON.

    evaluate_tasks(model, tokenizer, EvalConfig(tasks=["gsm8k"], data={"gsm8k": "test.jsonl"}),
                   EvalOutput("runs/x/eval"))                                               # protocol lori

One function, `evaluate_tasks`, serves all three callers. Per task (`hellora.eval.tasks`) it builds the chosen
protocol's prompts (`hellora.eval.protocols`), generates with its sampling settings, writes
`<task><tag>_generations.jsonl`, scores every column on them and writes `eval_<task><tag>.json` with the protocol's
name and settings; `eval.json` collects the headlines. Existing outputs are refused before any work starts.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from hellora.choices import GenerationBackend
from hellora.config import EvalConfig
from hellora.eval.generation import generate_hf, write_generations
from hellora.eval.protocols import Protocol
from hellora.eval.tasks import get_eval_task
from hellora.eval.tasks.base import Judge
from hellora.utils.errors import HelloraError
from hellora.utils.io import atomic_write_json, read_json
from hellora.utils.meta import run_metadata

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from hellora.eval.vllm_backend import VllmEngineSettings

log = logging.getLogger(__name__)

__all__ = ["check_outputs", "check_judge", "check_tasks", "resolve_protocol", "EvalOutput", "EvalScoring", "eval_tasks",
           "evaluate_task", "evaluate_tasks", "write_eval_summary", "cross_task"]


def resolve_protocol(task: str, protocol: str | None = None, *, max_new_tokens: int | None = None,
                     num_samples: int | None = None) -> Protocol:
    """`task`'s protocol `protocol` (default lori), with the budget / sample count overridden when given.

    An override keeps the protocol's name with a "+custom" suffix, so a report never passes it off as the original.
    """
    spec = get_eval_task(task)
    chosen = spec.protocol(protocol)
    changes: dict[str, Any] = {k: v for k, v in (("max_new_tokens", max_new_tokens), ("num_samples", num_samples)) if v}
    if "max_new_tokens" in changes and chosen.sampling.max_length is not None:
        changes["max_length"] = None  # an explicit new-token budget replaces the prompt + generation one
    if changes:
        chosen = replace(chosen, name=f"{chosen.name}+custom", sampling=replace(chosen.sampling, **changes))
    spec.check_protocol(chosen)
    return chosen


CLI_FIELDS = {"protocol": "--protocol", "num_samples": "--num-samples", "data": "--data"}
RECIPE_FIELDS = {"protocol": "eval.protocol", "num_samples": "eval.num_samples", "data": "eval.data.{task}"}


def check_tasks(tasks: Mapping[str, str | None], protocol: str | None = None, *, max_new_tokens: int | None = None,
                num_samples: int | None = None, fields: Mapping[str, str] = CLI_FIELDS) -> dict[str, Protocol]:
    """Every task's protocol, resolved, and its data checked present where the task has no default copy: before
    any model is loaded or trained. Errors name the flag or recipe field (`fields`: CLI_FIELDS, RECIPE_FIELDS)."""
    protocols = {}
    for task, data in tasks.items():
        try:
            protocols[task] = resolve_protocol(task, protocol, max_new_tokens=max_new_tokens, num_samples=num_samples)
        except HelloraError as err:
            field, _, why = str(err).partition(": ")
            raise HelloraError(f"{fields.get(field, field)}: {why}") from None
        get_eval_task(task).require_data(data, fields["data"].format(task=task))
    return protocols


def check_outputs(out_dir: str | Path, tasks: Iterable[str], tags: tuple[str, ...] = ("",),
                  overwrite: bool = False) -> None:
    """Refuse (one error) if any `eval_<task><tag>.json` already exists in `out_dir`, unless `overwrite`; with it,
    refuse unless that report (and the generations beside it) are hellora's (`hellora.utils.ownership`)."""
    from hellora.utils.ownership import check_eval_outputs

    if Path(out_dir).is_symlink():
        raise HelloraError(f"--out {out_dir} is a symbolic link; give the real path (nothing was changed)")
    for task in tasks:
        for tag in tags:
            path = Path(out_dir) / f"eval_{task}{tag}.json"
            if path.exists() and not overwrite:
                raise HelloraError(f"{path} exists; choose another --out or pass --overwrite")
            check_eval_outputs(path, Path(out_dir) / f"{task}{tag}_generations.jsonl")


def check_judge(protocol: Protocol, judge: Judge | None) -> None:
    if protocol.scorer == "judge" and judge is None:
        raise HelloraError("protocol judge: pass a judge callable (judge(prompt, continuation) -> refused) through "
                           "the Python API (evaluate_tasks(..., scoring=EvalScoring(judge=...))); the command line has "
                           "none")


def _model_dtype(model) -> str | None:
    try:
        return str(next(model.parameters()).dtype).replace("torch.", "")
    except (StopIteration, AttributeError):
        return None


@dataclass(frozen=True)
class EvalOutput:
    """Where reports go: `out_dir`, the file-name `tag` (`eval_<task><tag>.json`), whether existing hellora reports
    may be replaced, the `sources` (model, adapter) recorded in each, and whether `eval.json` is updated."""

    out_dir: str | Path
    tag: str = ""
    overwrite: bool = False
    sources: dict | None = None
    summary: bool = True


@dataclass(frozen=True)
class EvalScoring:
    """How generations are scored: the pass@k values (HumanEval) and a judge callable (protocol judge)."""

    ks: tuple = (1, 5, 10)
    judge: Judge | None = None


def eval_tasks(eval_config: EvalConfig) -> dict[str, str | None]:
    """{task: data file or None} for every task of `eval_config`, in its order."""
    return {t: eval_config.data.get(t) for t in eval_config.tasks}


def evaluate_task(task: str, model: PreTrainedModel | None, tokenizer: PreTrainedTokenizerBase | None,
                  eval_config: EvalConfig, output: EvalOutput, *,
                  scoring: EvalScoring = EvalScoring(), progress: bool = True,
                  vllm_engine: VllmEngineSettings | None = None) -> dict:
    """One task under `eval_config`'s protocol: generations, scores, `eval_<task><tag>.json`; returns the report.

    `eval_config` gives the protocol (and its max_new_tokens / num_samples overrides), the task's data file, the
    example limit and the batch size. With `vllm_engine` vLLM generates (the engine's settings), else transformers
    with `model`; the report's "backend" records what generated (name, version, dtype; for vLLM the dtype it reports
    having loaded).
    """
    spec = get_eval_task(task)
    protocol = resolve_protocol(task, eval_config.protocol, max_new_tokens=eval_config.max_new_tokens,
                                num_samples=eval_config.num_samples)
    data = eval_config.data.get(task)
    out, tag = Path(output.out_dir), output.tag
    check_outputs(out, [spec.name], (tag,), output.overwrite)
    check_judge(protocol, scoring.judge)
    records = spec.load(data, eval_config.limit)
    prompts = [spec.prompt(r, protocol) for r in records]
    start = time.perf_counter()
    if vllm_engine is not None:
        from hellora.eval.vllm_backend import generate_vllm

        generated = generate_vllm(replace(vllm_engine, progress=vllm_engine.progress and progress), prompts,
                                  protocol.sampling)
        completions, ran = generated.completions, generated.engine
    else:
        import transformers

        assert model is not None and tokenizer is not None  # only a vLLM run comes without them
        completions = generate_hf(model, tokenizer, prompts, protocol.sampling, batch_size=eval_config.batch_size,
                                  progress=progress, desc=f"{task}{tag}")
        ran = {"name": GenerationBackend.HF.value, "version": transformers.__version__, "dtype": _model_dtype(model)}
    generation_s = time.perf_counter() - start
    dtype = ran["dtype"]
    if protocol.dtype != "auto" and dtype is not None and dtype != protocol.dtype:
        log.warning("%s: protocol %s evaluates in %s but the model is in %s; the report records both", task,
                    protocol.name, protocol.dtype, dtype)
    saved = [{k: v for k, v in r.items() if not k.startswith("_")} for r in records]
    generations = write_generations(out / f"{spec.name}{tag}_generations.jsonl", saved, prompts, completions,
                                    protocol.sampling)
    scores = spec.score(generations, data=data, protocol=protocol, ks=scoring.ks, progress=progress,
                        judge=scoring.judge)
    settings = protocol.to_dict()
    report = {"task": str(spec.name), "protocol": settings, "headline": spec.headline(scores, protocol),
              "scores": {k: v for k, v in scores.items() if k != "per_task"}, "settings": settings["sampling"],
              "model_dtype": dtype, "backend": ran, "examples": len(prompts), "generation_s": round(generation_s, 2),
              "files": {"data": data, "generations": str(generations), **(output.sources or {})},
              "meta": run_metadata()}
    atomic_write_json(out / f"eval_{spec.name}{tag}.json", report)
    return report


def evaluate_tasks(model: PreTrainedModel | None, tokenizer: PreTrainedTokenizerBase | None,
                   eval_config: EvalConfig, output: EvalOutput, *,
                   scoring: EvalScoring = EvalScoring(), progress: bool = True,
                   vllm_engine: VllmEngineSettings | None = None) -> list[dict]:
    """Every task of `eval_config` (its `tasks`, each with its `data` file or the task's default) under its
    protocol, written as `output` says; `eval.json` updated when `output.summary`.

    All protocols are resolved and all outputs checked before the first generation.
    """
    tasks = eval_tasks(eval_config)
    protocols = check_tasks(tasks, eval_config.protocol, max_new_tokens=eval_config.max_new_tokens,
                            num_samples=eval_config.num_samples)
    check_outputs(output.out_dir, [get_eval_task(t).name for t in tasks], (output.tag,), output.overwrite)
    for chosen in protocols.values():
        check_judge(chosen, scoring.judge)
    checked = replace(output, overwrite=True)
    reports = [evaluate_task(t, model, tokenizer, eval_config, checked, scoring=scoring, progress=progress,
                             vllm_engine=vllm_engine)
               for t in tasks]
    if output.summary:
        write_eval_summary(output.out_dir, reports, output.sources)
    return reports


def write_eval_summary(out_dir: str | Path, reports: list[dict], sources: dict | None = None) -> Path:
    """`eval.json`: the headline scores, protocol, settings and files of every task evaluated in `out_dir`.

    Tasks already recorded there and not re-evaluated now are kept.
    """
    path = Path(out_dir) / "eval.json"
    summary = read_json(path, "eval summary") if path.is_file() else {"tasks": {}}
    for report in reports:
        summary["tasks"][report["task"]] = {"scores": report["headline"], "protocol": report["protocol"]["name"],
                                            "settings": report["settings"], "files": report["files"],
                                            "examples": report["examples"]}
    summary.update(sources or {})
    summary["meta"] = run_metadata()
    return atomic_write_json(path, summary)


def cross_task(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, eval_config: EvalConfig, *,
               out_dir: str | Path, scoring: EvalScoring = EvalScoring(), progress: bool = True, overwrite: bool = False) -> dict:
    """Each task before (adapters off) and after (adapters on): the paper's Appendix G matrix."""
    from hellora.adapters import disable_adapters

    check_outputs(out_dir, [get_eval_task(t).name for t in eval_config.tasks], ("_before", "_after"), overwrite)
    with disable_adapters(model):
        before = evaluate_tasks(model, tokenizer, eval_config, EvalOutput(out_dir, "_before", True, summary=False),
                                scoring=scoring, progress=progress)
    after = evaluate_tasks(model, tokenizer, eval_config, EvalOutput(out_dir, "_after", True, summary=False),
                           scoring=scoring, progress=progress)
    matrix = {b["task"]: {"before": b["headline"], "after": a["headline"], "protocol": a["protocol"]["name"]}
              for b, a in zip(before, after)}
    atomic_write_json(Path(out_dir) / "cross_task.json", {"matrix": matrix, "meta": run_metadata()})
    return matrix
