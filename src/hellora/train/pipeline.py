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
from pathlib import Path

from hellora.adapters import attach_adapters
from hellora.adapters.accounting import count_parameters
from hellora.adapters.io import load_adapter, read_lori_d, save_adapter
from hellora.config import RunConfig, dump_config
from hellora.placement import HotExpertPlacement
from hellora.profiling.profile import ExpertProfile
from hellora.profiling.stage import planned_profile_mode, profile_stage
from hellora.loop.fsdp import check_fsdp_supported, fsdp_requested, is_sharded, shard_frozen_base
from hellora.loop.training import resolve_steps, train_loop
from hellora.quant.run import check_expert_storage, quantize_for_run
from hellora.train.run_folder import RunRecorder, check_run_folder, hold_run_folder
from hellora.loop.run_inputs import (build_features, check_run_inputs, load_run_model, load_run_tokenizer,
                                     log_data_summary, make_accelerator, model_spec, pad_id_of)
from hellora.utils.io import atomic_write_text
from hellora.choices import ProfileMode

log = logging.getLogger(__name__)


def run_training(config: RunConfig, *, progress: bool = True, restart_from_checkpoint: bool = False) -> dict:
    """Run the whole pipeline for `config`; returns run.json's content.

    Everything that can be wrong with the inputs (data, tokenizer, model, k) is checked before the run folder is
    touched, so a failed start leaves no half-made run behind. The first process (RANK 0, or the only one) holds
    the run folder's lock throughout, so a second launch into the same folder is refused instead of interleaving.
    """
    config = config.resolved()
    with hold_run_folder(config.output_dir):
        return _run_training(config, progress=progress, restart=restart_from_checkpoint)


def _run_training(config: RunConfig, *, progress: bool, restart: bool = False) -> dict:
    run = Path(config.output_dir)
    config_text = dump_config(config)
    resuming = check_run_folder(run, config_text, restart=restart)
    profile_mode = planned_profile_mode(config, run)  # config and folder alone: refused before loading anything
    tokenizer = load_run_tokenizer(config)
    features, source = build_features(config, tokenizer)
    data_summary = source.pop("summary")
    model = load_run_model(config)
    check_run_inputs(config, model, tokenizer)
    check_eval_step(config)
    pad_id = pad_id_of(tokenizer)

    accelerator = make_accelerator(config)
    resolve_steps(config.train, len(features), accelerator.num_processes)  # batch sizes fit the data
    sharded = fsdp_requested(config.train, accelerator)
    check_expert_storage(config, sharded=sharded)
    if sharded:
        check_fsdp_supported(config.adapter.method, config.adapter.variant, profile_mode or ProfileMode.NONE,
                             accelerator.mixed_precision)
    if accelerator.is_main_process:
        log_data_summary(data_summary)  # before training, once the inputs were accepted (a refusal stays one line)
        run.mkdir(parents=True, exist_ok=True)
        atomic_write_text(run / "config.yaml", config_text)
        if resuming:
            log.info("resuming the run in %s", run)
    accelerator.wait_for_everyone()
    recorder = RunRecorder(run, config, accelerator)
    recorder.step("data", **data_summary)
    if config.train.report_to:
        accelerator.init_trackers(run.name, config={"lr": config.train.learning_rate, "method": config.adapter.method})

    if "train" in recorder.data["steps"] and (run / "adapter" / "hellora_adapter.json").is_file():
        # Training finished before the run was stopped (e.g. during evaluation): do not train again.
        load_adapter(model, run / "adapter")
        return _finish(config, model, tokenizer, run, recorder, accelerator, progress)

    if sharded:  # once, before any adapter (warm-up LoRA, then the run's): see loop/fsdp.py
        shard_frozen_base(model, accelerator, accelerator.mixed_precision)
    placement = None
    # HELLoRI-S reuses the placement of the HELLoRI-D adapter it starts from (adapter.lori_from).
    if config.adapter.chooses_hot_experts:
        placement = _profile_and_select(config, model, features, source, accelerator, pad_id, recorder, progress)
    lori_d = read_lori_d(config.adapter.lori_from) if config.adapter.lori_from else None
    attach_adapters(model, config.adapter, placement, lori_d=lori_d)
    quantize_for_run(model, config.model)  # after attach: the adapted experts are the hot ones
    params = count_parameters(model)
    recorder.step("attach", trainable=params["trainable"], total=params["total"],
                  trainable_pct=params["trainable_pct"], by_role=params["by_role"])

    extra_loss = _balance_loss(config, accelerator) if config.adapter.rules.has_balance_loss else None

    load = machine_load()  # throughput is only comparable with the load it was measured under
    result = train_loop(model, features, config.train, accelerator=accelerator, run_dir=run, pad_token_id=pad_id,
                        progress=progress, extra_loss=extra_loss)
    recorder.step("train", **{k: v for k, v in result.to_dict().items() if k != "losses"}, **load)
    if accelerator.is_main_process:
        trained = accelerator.unwrap_model(model)
        if config.adapter.rules.trains_whole_model:  # full fine-tuning: the whole model is the result
            trained.save_pretrained(run / "model")
        else:
            save_adapter(trained, run / "adapter", base_model=config.model.name, overwrite=True,
                         extra={"run": str(run), "model": model_spec(config)})
    trained = accelerator.unwrap_model(model)
    if is_sharded(trained) and config.eval.enabled and accelerator.is_main_process:
        # evaluation needs whole weights on one process: the base as loaded, the adapter as saved
        del model, trained  # both references dropped before the reload
        trained = load_adapter(load_run_model(config), run / "adapter")
    return _finish(config, trained, tokenizer, run, recorder, accelerator, progress)


def _finish(config: RunConfig, model, tokenizer, run: Path, recorder: RunRecorder, accelerator, progress: bool):
    """Evaluate (when configured) and mark the run finished, or `degenerate` / `diverged` when training stalled or
    blew up (`hellora.loop.training.training_health`); either way training completed (`completed`)."""
    if config.eval.enabled and accelerator.is_main_process:
        _evaluate(config, model, tokenizer, run, recorder, progress)
    train = recorder.data["steps"].get("train", {})
    health = train.get("health", "ok")
    recorder.data.update(status="finished" if health == "ok" else health, completed=True,
                         reason=train.get("health_reason"))
    recorder.save()
    accelerator.end_training()
    return recorder.data


def _evaluate(config: RunConfig, model, tokenizer, run: Path, recorder: RunRecorder, progress: bool) -> None:
    """The pipeline's last step: each configured benchmark, written to run/eval/."""
    from hellora.eval.run import EvalOutput, evaluate_tasks

    output = EvalOutput(run / "eval", overwrite=True,
                        sources={"model": config.model.name, "adapter": str(run / "adapter")})
    reports = evaluate_tasks(model, tokenizer, config.eval, output, progress=progress)
    recorder.step("eval", **{r["task"]: r["headline"] for r in reports})


def check_eval_step(config: RunConfig) -> None:
    """The eval step's protocols and data, refused before hours of training (unknown protocol, missing file)."""
    if not config.eval.enabled:
        return
    from hellora.eval.run import RECIPE_FIELDS, check_tasks

    ev = config.eval
    check_tasks({t: ev.data.get(t) for t in ev.tasks}, ev.protocol, max_new_tokens=ev.max_new_tokens,
                num_samples=ev.num_samples, fields=RECIPE_FIELDS)


def machine_load() -> dict:
    """The 1-minute load average and core count as training starts ({} where the OS does not report a load)."""
    import os

    try:
        return {"load_avg_1m": round(os.getloadavg()[0], 2), "cpu_count": os.cpu_count()}
    except (AttributeError, OSError):
        return {}


def _balance_loss(config: RunConfig, accelerator):
    """LoRAMoE's localized balancing loss, weighted by adapter.loramoe_balance (None when off)."""
    if config.adapter.loramoe_balance <= 0:
        return None
    from hellora.adapters.loramoe import loramoe_balance_loss

    return lambda net: config.adapter.loramoe_balance * loramoe_balance_loss(accelerator.unwrap_model(net))


def _profile_and_select(config, model, features, source, accelerator, pad_id, recorder: RunRecorder, progress):
    """The run's hot-expert placement: recorder.run/placement.json, else selection.path, else profiled and selected."""
    placement_path = recorder.run / "placement.json"
    if placement_path.is_file():
        return HotExpertPlacement.load(placement_path)
    if config.selection.path:  # a placement saved by `hellora select`: no profiling
        placement = HotExpertPlacement.load(config.selection.path)
        if accelerator.is_main_process:
            placement.save(placement_path)
        recorder.step("select", strategy=placement.strategy, k=placement.k, experts=placement.total_experts,
                      path=str(config.selection.path))
        accelerator.wait_for_everyone()
        return placement
    profile = profile_stage(config, model, features, source, accelerator, pad_id, recorder, progress)
    reference = ExpertProfile.load(config.selection.reference) if config.selection.reference else None
    placement = profile.select(config.selection.strategy, config.selection.k, seed=config.selection.seed,
                               p=config.selection.p, reference=reference)
    if accelerator.is_main_process:
        placement.save(placement_path)
    recorder.step("select", strategy=placement.strategy, k=placement.k, experts=placement.total_experts)
    accelerator.wait_for_everyone()
    return placement
