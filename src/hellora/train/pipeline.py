"""`hellora train RECIPE.yaml`: profile -> select -> attach -> train -> save, one file per step in the run folder.

    runs/x/config.yaml      the resolved config (paper defaults filled in)
    runs/x/run.json         status, versions, device, processes, seed, each step's timing and results
    runs/x/profile.json     expert routing counts (warm-up or forward), hellora only
    runs/x/placement.json   hot experts per layer, hellora only
    runs/x/checkpoints/     safetensors checkpoints for resume
    runs/x/metrics.jsonl    loss, learning rate, grad norm, step time
    runs/x/adapter/         the trained adapter (hellora_adapter.safetensors + .json)

A step whose file exists is not redone, so a killed run resumes where it stopped (from its last checkpoint) and
any step can be rerun alone by deleting its file. A folder holding a finished run, or a run with another config,
is refused rather than overwritten.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import torch
import yaml

from hellora.accounting import count_parameters
from hellora.adapters import attach_adapters
from hellora.adapters.io import save_adapter
from hellora.config import RunConfig, dump_config
from hellora.data import encode_pairs, get_task, sample_fraction
from hellora.placement import HotExpertPlacement
from hellora.profiling.stage import (profile_only, profile_sample, profile_stage,  # noqa: F401  (re-exported)
                                     stability_tracker)
from hellora.train.loop import learning_rate, resolve_steps, train_loop
from hellora.utils.errors import HelloraError
from hellora.utils.io import atomic_write_json, atomic_write_text, folder_lock, read_json
from hellora.utils.meta import run_metadata

log = logging.getLogger(__name__)


def _mixed_precision(setting: str) -> str:
    if setting == "auto":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    return setting


def make_accelerator(config: RunConfig):
    from accelerate import Accelerator

    run = Path(config.output_dir)
    # cpu=True lets torchrun/accelerate launch run several CPU processes (gloo) where no GPU exists.
    return Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=_mixed_precision(config.train.mixed_precision),
                       log_with=config.train.report_to or None, project_dir=str(run))


def run_finished(run: str | Path) -> bool:
    """Whether `run` holds a run whose run.json says it finished."""
    status = Path(run) / "run.json"
    return status.is_file() and read_json(status, "run status").get("status") == "finished"


def _pad_id(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


def _reresolved(saved: Path) -> str | None:
    """A saved config.yaml as this version resolves it: fields added since it was written take their defaults,
    so an unfinished run from an older hellora still resumes when nothing it set has changed."""
    from hellora.config import load_run_config

    try:
        return dump_config(load_run_config(saved).resolved())
    except HelloraError:
        return None


def check_run_folder(run: Path, config_text: str) -> bool:
    """True when `run` holds an unfinished run of the same config (resume); raises for anything else there."""
    if run_finished(run):
        raise HelloraError(f"{run} already holds a finished run; choose another output_dir (nothing was changed)")
    saved = run / "config.yaml"
    if saved.is_file():
        text = saved.read_text()
        current = _reresolved(saved) if text != config_text else text  # re-parsed only when the text differs
        if current != config_text:
            old, new = yaml.safe_load(current or text), yaml.safe_load(config_text)
            diff = next((f"{s}.{k}" for s in new for k in (new[s] or {}) if isinstance(new[s], dict)
                         and (old.get(s) or {}).get(k) != new[s][k]), "output_dir")
            raise HelloraError(f"{run} holds a run with another config (first difference: {diff}); "
                               f"choose another output_dir (nothing was changed)")
        return True
    if run.is_dir() and any(run.iterdir()):
        raise HelloraError(f"{run} is not empty and holds no hellora run; choose another output_dir")
    return False


def load_tokenizer_for(config: RunConfig):
    name = config.model.tokenizer or config.model.name
    if name == "tiny":
        from hellora.data import build_tiny_tokenizer

        return build_tiny_tokenizer()
    from hellora.models.loading import load_tokenizer

    return load_tokenizer(name, trust_remote_code=config.model.trust_remote_code)


def load_base_model(config: RunConfig):
    from hellora.models.loading import DTYPES, load_config, load_model, model_from_config
    from hellora.models.presets import PRESETS

    if config.model.name in PRESETS:  # architecture only: random init (smoke runs, benchmarks)
        torch.manual_seed(config.train.seed)
        hf_config = load_config(config.model.name, overrides=config.model.overrides)
        if config.model.dtype not in DTYPES:
            raise HelloraError(f"model.dtype: unknown dtype {config.model.dtype!r}; choose one of {', '.join(DTYPES)}")
        dtype = DTYPES[config.model.dtype]
        return model_from_config(hf_config, dtype=torch.float32 if dtype == "auto" else dtype)
    return load_model(config.model.name, dtype=config.model.dtype, trust_remote_code=config.model.trust_remote_code)


def build_features(config: RunConfig, tokenizer) -> tuple[list[dict], dict]:
    task = get_task(config.data.task)
    records = task.load(config.data.train, limit=config.data.limit)
    pairs = task.format_records(records)
    features = encode_pairs(tokenizer, pairs, config.data.max_length, config.data.max_prompt_length)
    source = {"task": config.data.task, "data": config.data.train or "hub default", "examples": len(features)}
    return features, source


class RunRecorder:
    """run.json: written atomically after every step, by the main process only."""

    def __init__(self, run: Path, config: RunConfig, accelerator) -> None:
        self.path = run / "run.json"
        self.main = accelerator.is_main_process
        previous = read_json(self.path, "run status") if self.path.is_file() else {}
        self.data = {"status": "running", "method": config.adapter.method, "processes": accelerator.num_processes,
                     "meta": run_metadata(config.train.seed), "steps": previous.get("steps", {})}

    def step(self, name: str, **values) -> None:
        self.data["steps"][name] = values
        self.save()

    def save(self) -> None:
        if self.main:
            atomic_write_json(self.path, self.data)


def run_training(config: RunConfig, *, progress: bool = True) -> dict:
    """Run the whole pipeline for `config`; returns run.json's content.

    Everything that can be wrong with the inputs (data, tokenizer, model, k) is checked before the run folder is
    touched, so a failed start leaves no half-made run behind. The first process (RANK 0, or the only one) holds
    the run folder's lock throughout, so a second launch into the same folder is refused instead of interleaving.
    """
    config = config.resolved()
    if int(os.environ.get("RANK", "0")) != 0:
        return _run_training(config, progress=progress)
    with folder_lock(config.output_dir):
        return _run_training(config, progress=progress)


def _run_training(config: RunConfig, *, progress: bool) -> dict:
    run = Path(config.output_dir)
    config_text = dump_config(config)
    resuming = check_run_folder(run, config_text)
    tokenizer = load_tokenizer_for(config)
    features, source = build_features(config, tokenizer)
    model = load_base_model(config)
    _check_model(config, model, tokenizer)
    pad_id = _pad_id(tokenizer)

    accelerator = make_accelerator(config)
    resolve_steps(config.train, len(features), accelerator.num_processes)  # batch sizes fit the data
    if accelerator.is_main_process:
        run.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run / "config.yaml", config_text)
        if resuming:
            log.info("resuming the run in %s", run)
    accelerator.wait_for_everyone()
    recorder = RunRecorder(run, config, accelerator)
    recorder.save()
    if config.train.report_to:
        accelerator.init_trackers(run.name, config={"lr": config.train.learning_rate, "method": config.adapter.method})

    if "train" in recorder.data["steps"] and (run / "adapter" / "hellora_adapter.json").is_file():
        # Training finished before the run was stopped (e.g. during evaluation): do not train again.
        from hellora.adapters.io import load_adapter

        load_adapter(model, run / "adapter")
        return _finish(config, model, tokenizer, run, recorder, accelerator, progress)

    placement = None
    # HELLoRI-S reuses the placement of the HELLoRI-D adapter it starts from (adapter.lori_from).
    if config.adapter.method == "hellora" and config.adapter.variant != "lori_s":
        placement = _profile_and_select(config, run, model, features, source, accelerator, pad_id, recorder, progress)
    attach_adapters(model, config.adapter, placement)
    params = count_parameters(model)
    recorder.step("attach", trainable=params["trainable"], total=params["total"],
                  trainable_pct=params["trainable_pct"], by_role=params["by_role"])

    extra_loss = _balance_loss(config, accelerator) if config.adapter.method == "loramoe" else None

    result = train_loop(model, features, config.train, accelerator=accelerator, run_dir=run, pad_token_id=pad_id,
                        progress=progress, extra_loss=extra_loss)
    recorder.step("train", **{k: v for k, v in result.to_dict().items() if k != "losses"})
    if accelerator.is_main_process:
        trained = accelerator.unwrap_model(model)
        if config.adapter.method == "fft":  # full fine-tuning: the whole model is the result
            trained.save_pretrained(run / "model")
        else:
            save_adapter(trained, run / "adapter", base_model=config.model.name, overwrite=True,
                         extra={"run": str(run)})
    return _finish(config, accelerator.unwrap_model(model), tokenizer, run, recorder, accelerator, progress)


def _finish(config: RunConfig, model, tokenizer, run: Path, recorder: RunRecorder, accelerator, progress: bool):
    """Evaluate (when configured) and mark the run finished."""
    if config.eval.enabled and accelerator.is_main_process:
        _evaluate(config, model, tokenizer, run, recorder, progress)
    recorder.data["status"] = "finished"
    recorder.save()
    accelerator.end_training()
    return recorder.data


def _evaluate(config: RunConfig, model, tokenizer, run: Path, recorder: RunRecorder, progress: bool) -> None:
    """The pipeline's last step: each configured benchmark, written to run/eval/."""
    from dataclasses import replace

    from hellora.eval.run import DEFAULTS, evaluate_task, headline, write_eval_summary

    scores, reports = {}, []
    for task in config.eval.tasks:
        settings = DEFAULTS[task]
        if config.eval.max_new_tokens:
            settings = replace(settings, max_new_tokens=config.eval.max_new_tokens)
        if config.eval.num_samples:
            settings = replace(settings, num_samples=config.eval.num_samples)
        report = evaluate_task(task, model, tokenizer, out_dir=run / "eval", data=config.eval.data.get(task),
                               limit=config.eval.limit, settings=settings, batch_size=config.eval.batch_size,
                               progress=progress, overwrite=True, sources={"model": config.model.name})
        scores[task] = headline(report)
        reports.append(report)
    write_eval_summary(run / "eval", reports, {"model": config.model.name, "adapter": str(run / "adapter")})
    recorder.step("eval", **scores)


def _balance_loss(config: RunConfig, accelerator):
    """LoRAMoE's localized balancing loss, weighted by adapter.loramoe_balance (None when off)."""
    if config.adapter.loramoe_balance <= 0:
        return None
    from hellora.adapters.loramoe import loramoe_balance_loss

    return lambda net: config.adapter.loramoe_balance * loramoe_balance_loss(accelerator.unwrap_model(net))


def _check_model(config: RunConfig, model, tokenizer) -> None:
    """Fail before any training on a non-MoE model, a bad k or a tokenizer larger than the embeddings."""
    from hellora.models.families import describe_moe_model
    from hellora.placement import check_k

    spec = describe_moe_model(model)
    if config.selection.k is not None:
        check_k(config.selection.k, spec.num_experts)
    vocab = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > vocab:
        raise HelloraError(f"model.tokenizer has {len(tokenizer)} tokens but the model embeds only {vocab}; "
                           f"use the model's own tokenizer")
    if config.profile.mode not in ("warmup", "forward", "none"):
        raise HelloraError(f"profile.mode: unknown mode {config.profile.mode!r}; choose warmup, forward or none")
    learning_rate(0, 1, 1.0, 0.0, config.train.lr_scheduler)  # validates the schedule name
    sample_fraction([0], config.profile.fraction, 0)  # validates the fraction
    stability_tracker(config, spec.top_k)  # validates profile.stable_window / stable_jaccard


def _profile_and_select(config, run, model, features, source, accelerator, pad_id, recorder, progress):
    placement_path = run / "placement.json"
    if placement_path.is_file():
        return HotExpertPlacement.load(placement_path)
    profile = profile_stage(config, run, model, features, source, accelerator, pad_id, recorder, progress)
    placement = profile.select(config.selection.strategy, config.selection.k, seed=config.selection.seed,
                               p=config.selection.p)
    if accelerator.is_main_process:
        placement.save(placement_path)
    recorder.step("select", strategy=placement.strategy, k=placement.k, experts=placement.total_experts)
    accelerator.wait_for_everyone()
    return placement
