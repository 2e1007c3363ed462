"""One fine-tuning run of one arm at one learning rate, evaluated at a few checkpoints on the way.

A run folder `{out}/{target}/runs/{arm}/b{B}-s{S}-lr{LR}/` is written in one atomic rename when the run is
finished (`study_run.json`, and for LoRI-D a saved adapter that LoRI-S starts from, for LoRA the routing of the
finished model over the fine-tuning data that the oracle arm selects from), so a kill at any moment leaves either
the whole folder or nothing; a rerun skips every folder that exists.

At each checkpoint step (`StudyConfig.checkpoint_steps`) the run scores validation and test exact match of the
target and every other skill's exact match; these points (with the base's own scores as step 0) are the
trajectory the forgetting frontier and the iso-target retention are read from.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hellora.adapters import AdapterConfig, attach_adapters
from hellora.adapters.accounting import count_parameters
from hellora.choices import Method
from hellora.loop.training import TrainingDiverged, train_loop
from hellora.placement import needs_reference
from hellora.profiling import ExpertProfile
from hellora.study.arms import ARMS, Arm, ProfileSource
from hellora.study.bases import StudyData, evaluate, forward_profile, other_skills_profile, routing_on, warmup_profile
from hellora.study.config import StudyConfig
from hellora.study.paths import run_folder
from hellora.study.skill_moe import StepSchedule
from hellora.utils.errors import HelloraError
from hellora.utils.io import atomic_dir, atomic_write_json, read_json

if TYPE_CHECKING:
    from accelerate import Accelerator
    from torch import nn

    from hellora.loop.training import LoopResult
    from hellora.placement import HotExpertPlacement

log = logging.getLogger(__name__)

ORACLE_FILE = "oracle_profile.json"


@dataclass
class RunContext:
    """Everything the runs of one (target, base seed, fine-tune seed) share."""

    cfg: StudyConfig
    out: Path
    target: str
    base_seed: int
    ft_seed: int
    model: nn.Module         # the pretrained base (never modified: every run fine-tunes a deep copy)
    data: StudyData
    accelerator: Accelerator


def select_hot(ctx: RunContext, arm: Arm, profile: ExpertProfile, k: int) -> HotExpertPlacement:
    """The arm's hot experts from `profile`; the retention-aware rule also reads the other skills' routing on
    this base (summed over skills) as its reference."""
    assert arm.strategy is not None, f"arm {arm.name} selects no experts"  # needs_profile holds
    seed = 1000 * ctx.base_seed + ctx.ft_seed
    if not needs_reference(arm.strategy):
        return profile.select(arm.strategy, k, seed=seed)
    return profile.select(arm.strategy, k, seed=seed, reference=other_skills_profile(ctx.cfg, ctx.out, ctx.base_seed))


def placement_for(ctx: RunContext, arm: Arm, lr: float) -> tuple[HotExpertPlacement | None, str | None]:
    """(hot-expert placement or None, where its profile came from) for a HELLoRA arm."""
    if not arm.needs_profile:
        return None, None
    if arm.profile is ProfileSource.FORWARD:
        profile, source = forward_profile(ctx.out, ctx.target, ctx.base_seed, ctx.ft_seed, ctx.model, ctx.data), "forward"
    elif arm.profile is ProfileSource.ORACLE:
        path = run_folder(ctx.out, ctx.target, "lora", ctx.base_seed, ctx.ft_seed, lr) / ORACLE_FILE
        if not path.is_file():
            raise HelloraError(f"{path}: missing; the oracle arm selects from the finished LoRA run at the same lr")
        profile, source = ExpertProfile.load(path), "oracle"
    else:
        fraction = arm.warmup if arm.warmup is not None else ctx.cfg.warmup_fraction
        profile = warmup_profile(ctx.cfg, ctx.out, ctx.target, ctx.base_seed, ctx.ft_seed, fraction, ctx.model,
                                 ctx.data, ctx.accelerator)
        source = f"warmup {fraction:g}"
    return select_hot(ctx, arm, profile, ctx.cfg.hot_k(arm.k_factor)), source


def adapter_config(ctx: RunContext, arm: Arm, lr: float) -> AdapterConfig:
    if arm.rules.trains_whole_model:
        return AdapterConfig(method=Method.FFT)
    lori_from = None
    if arm.lori_from:
        lori_from = str(run_folder(ctx.out, ctx.target, arm.lori_from, ctx.base_seed, ctx.ft_seed, lr) / "adapter")
    return AdapterConfig(method=arm.method, variant=arm.variant, r=ctx.cfg.rank, alpha=2 * ctx.cfg.rank,
                         targets=arm.targets, seed=ctx.ft_seed, lori_from=lori_from)


def adapted_model(ctx: RunContext, arm: Arm, config: AdapterConfig,
                  placement: HotExpertPlacement | None) -> nn.Module:
    """A deep copy of the base with the arm's adapters; LoRI-S reads its LoRI-D adapter here (attach reads no
    file), so every caller that builds a LoRI-S arm goes through this one place. A quantized arm then stores its
    experts as `hellora train model.cold_experts=... model.hot_experts=...` would: after attach, the adapted
    experts being the hot ones."""
    from hellora.adapters.io import read_lori_d

    tuned = copy.deepcopy(ctx.model)
    lori_d = read_lori_d(config.lori_from) if arm.rules.continues_from_lori_d and config.lori_from else None
    attach_adapters(tuned, config, placement, lori_d=lori_d)
    if arm.quantized:
        from hellora.quant.apply import adapted_experts, quantize_experts

        quantize_experts(tuned, adapted_experts(tuned), cold=arm.cold_experts, hot=arm.hot_experts)
    return tuned


def train_with_checkpoints(ctx: RunContext, tuned: nn.Module, lr: float,
                           name: str) -> tuple[LoopResult | None, list[dict]]:
    """(train result or None when the loss diverged, checkpoint evaluations). One cosine schedule over
    the target's steps (`StudyConfig.steps_for`); the loop's per-step hook scores the model at each checkpoint step
    and never stops it."""
    cfg = ctx.cfg
    steps = set(cfg.checkpoint_steps(ctx.target))
    points: list[dict] = []

    def at_step(done: int) -> bool:
        if done in steps:
            points.append({"step": done, **evaluate(tuned, ctx.data)})
        return False

    train = StepSchedule(steps=cfg.steps_for(ctx.target), lr=lr, batch=min(cfg.batch_size, len(ctx.data.finetune)),
                         seed=ctx.ft_seed).train_config()
    try:
        result = train_loop(tuned, ctx.data.finetune, train, accelerator=ctx.accelerator, name=name, pad_token_id=0,
                            progress=False, should_stop=at_step)
    except TrainingDiverged as err:
        log.warning("%s diverged: %s", name, err)
        return None, points
    return result, points


def _storage(tuned) -> dict | None:
    """How the run's experts were stored ({"cold_experts", "hot_experts"}: keep / int8 / nf4); None: no run."""
    from hellora.quant.apply import quantization_record

    return None if tuned is None else quantization_record(tuned)


def run_arm(ctx: RunContext, arm_name: str, lr: float) -> Path:
    """Fine-tune one arm at `lr`, evaluating at each checkpoint; write the run folder; skipped when finished."""
    from hellora.adapters.io import save_adapter

    arm = ARMS[arm_name]
    folder = run_folder(ctx.out, ctx.target, arm_name, ctx.base_seed, ctx.ft_seed, lr)
    if (folder / "study_run.json").is_file():
        return folder
    config = adapter_config(ctx, arm, lr)
    name = f"{ctx.target}/{arm_name} b{ctx.base_seed} s{ctx.ft_seed} lr{lr:g}"
    placement, source = placement_for(ctx, arm, lr)
    points: list[dict]
    diverged_source = config.lori_from and not Path(config.lori_from).is_dir()
    if diverged_source:  # its LoRI-D run diverged: nothing to continue from, so this run fails too
        log.warning("%s: no LoRI-D adapter at %s", name, config.lori_from)
        tuned, result, points = None, None, []
    else:
        tuned = adapted_model(ctx, arm, config, placement)
        result, points = train_with_checkpoints(ctx, tuned, lr, name)
    params = count_parameters(tuned) if tuned is not None else {"trainable": None, "trainable_pct": None}
    record = {
        "target": ctx.target, "arm": arm_name, "base_seed": ctx.base_seed, "ft_seed": ctx.ft_seed, "lr": lr,
        "diverged": result is None, "checkpoints": points,
        "trainable": params["trainable"], "trainable_pct": params["trainable_pct"],
        "median_step_s": result.median_step_s if result else None,
        "final_loss": result.final_loss if result else None,
        "hot_experts": {str(k): v for k, v in placement.experts.items()} if placement else None,
        "profile": source,
        "expert_storage": _storage(tuned),
    }
    with atomic_dir(folder) as tmp:
        if arm.rules.starts_lori_s and result is not None and tuned is not None:
            save_adapter(tuned, tmp / "adapter", base_model="proxy-moe")
        if arm_name == "lora" and result is not None and tuned is not None:
            routing_on(tuned, ctx.data.finetune, {"skill": ctx.target, "seed": ctx.ft_seed, "lr": lr,
                                                  "from": "finished lora run"}).save(tmp / ORACLE_FILE)
        atomic_write_json(tmp / "study_run.json", record)
    return folder


def read_run(path: Path) -> dict:
    """A run record, its schema checked (the summary reads files a killed or older run may have left)."""
    record = read_json(path, "study run")
    need = ("target", "arm", "base_seed", "ft_seed", "lr", "diverged", "checkpoints")
    if not isinstance(record, dict) or any(k not in record for k in need):
        raise HelloraError(f"{path}: not a proxy-study run record (needs {', '.join(need)})")
    return record
