"""One fine-tuning run of one arm (and the learning-rate search that precedes an arm's runs).

A run folder `{out}/{target}/runs/{arm}/b{B}-s{S}/` is written in one atomic rename when the run is finished
(`study_run.json`, `run.json`, `config.yaml`, `eval/eval_proxy.json`, and a LoRI-D adapter for LoRI-S), so a
kill at any moment leaves either the whole folder or nothing; a rerun skips every folder that exists.
A learning-rate trial is one JSON file `{out}/{target}/tune/{arm}/lr{LR}.json`, written atomically the same way.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path

import yaml

from hellora.adapters.accounting import count_parameters
from hellora.adapters import AdapterConfig
from hellora.profiling import ExpertProfile
from hellora.study.arms import ARMS, Arm
from hellora.study.bases import StudyData, warmup_profile
from hellora.study.config import StudyConfig
from hellora.study.core import adapted_copy
from hellora.study.paths import chosen_file, run_folder, tune_file
from hellora.study.scoring import hot_set_jaccard, routing_entropy, score_features, score_with_routing
from hellora.study.toy import train_steps
from hellora.train.loop import TrainingDiverged
from hellora.utils.io import atomic_dir, atomic_write_json, atomic_write_text, read_json
from hellora.utils.meta import run_metadata

log = logging.getLogger(__name__)


@dataclass
class TargetContext:
    """Everything the runs of one (target, base seed) share."""

    cfg: StudyConfig
    out: Path
    target: str
    base_seed: int
    model: object            # the pretrained base (never modified: every run fine-tunes a deep copy)
    data: StudyData
    before: dict             # bases.before_scores
    accelerator: object


def _placement(ctx: TargetContext, arm: Arm, ft_seed: int):
    if not arm.needs_profile:
        return None, None
    fraction = arm.warmup if arm.warmup is not None else ctx.cfg.warmup_fraction
    profile = warmup_profile(ctx.cfg, ctx.out, ctx.target, ctx.base_seed, ft_seed, fraction, ctx.model, ctx.data,
                             ctx.accelerator)
    k = ctx.cfg.hot_k(arm.k_factor)
    return profile.select(arm.strategy, k, seed=1000 * ctx.base_seed + ft_seed), fraction


def _adapter_config(ctx: TargetContext, arm: Arm, ft_seed: int) -> AdapterConfig:
    if arm.rules.trains_whole_model:
        return AdapterConfig(method="fft")
    lori_from = None
    if arm.lori_from:
        lori_from = str(run_folder(ctx.out, ctx.target, arm.lori_from, ctx.base_seed, ft_seed) / "adapter")
    return AdapterConfig(method=arm.method, variant=arm.variant, r=ctx.cfg.rank, alpha=2 * ctx.cfg.rank,
                         targets=arm.placement, seed=ft_seed, lori_from=lori_from)


def fine_tune(ctx: TargetContext, arm_name: str, ft_seed: int, lr: float):
    """(tuned model, train result or None when the loss diverged, placement, warm-up fraction)."""
    arm = ARMS[arm_name]
    placement, fraction = _placement(ctx, arm, ft_seed)
    config = _adapter_config(ctx, arm, ft_seed)
    if config.lori_from and not Path(config.lori_from).is_dir():  # its LoRI-D run diverged: nothing to continue
        log.warning("%s/%s b%d s%d: no LoRI-D adapter at %s", ctx.target, arm_name, ctx.base_seed, ft_seed,
                    config.lori_from)
        return copy.deepcopy(ctx.model), None, placement, fraction
    tuned = adapted_copy(ctx.model, config, placement)
    try:
        result = train_steps(tuned, ctx.data.finetune, ctx.cfg.finetune_steps, lr,
                             min(ctx.cfg.batch_size, len(ctx.data.finetune)), ctx.accelerator,
                             f"{ctx.target}/{arm_name}", seed=ft_seed, progress=False)
    except TrainingDiverged as err:
        log.warning("%s/%s b%d s%d lr %g diverged: %s", ctx.target, arm_name, ctx.base_seed, ft_seed, lr, err)
        result = None
    return tuned, result, placement, fraction


def lr_trial(ctx: TargetContext, arm_name: str, lr: float) -> dict:
    """Validation score of the arm at `lr` on this base and the first fine-tune seed; cached per file."""
    path = tune_file(ctx.out, ctx.target, arm_name, lr)
    if path.is_file():
        return read_json(path, "lr trial")
    ft_seed = ctx.cfg.ft_seeds[0]
    tuned, result, _, _ = fine_tune(ctx, arm_name, ft_seed, lr)
    val = score_features(tuned, ctx.data.val) if result else {"exact_match": -1.0, "token_accuracy": -1.0}
    # the other skills after this lr (not used to choose: it shows how forgetting moves with the lr)
    others = [score_features(tuned, f)["exact_match"] for f in ctx.data.others.values()] if result else []
    record = {"arm": arm_name, "lr": lr, "base_seed": ctx.base_seed, "ft_seed": ft_seed, "val": val,
              "others_mean": sum(others) / len(others) if others else None,
              "diverged": result is None, "final_loss": result.final_loss if result else None}
    atomic_write_json(path, record)
    return record


def choose_lr(ctx: TargetContext, arm_name: str) -> float:
    """The grid value with the best validation exact match (ties: token accuracy, then the smaller lr)."""
    path = chosen_file(ctx.out, ctx.target, arm_name)
    grid = ctx.cfg.lr_grid_for(arm_name)
    if path.is_file():
        saved = read_json(path, "chosen lr")
        if saved.get("grid") == grid:
            return saved["lr"]
    trials = [lr_trial(ctx, arm_name, lr) for lr in grid]
    best = max(trials, key=lambda t: (t["val"]["exact_match"], t["val"]["token_accuracy"], -t["lr"]))
    atomic_write_json(path, {"lr": best["lr"], "grid": grid, "trials": trials})
    return best["lr"]


def _diagnostics(ctx: TargetContext, tuned, after: ExpertProfile, others: dict) -> dict:
    from hellora.flops import adapter_flops

    before = ExpertProfile.from_dict(ctx.before["routing"])
    before_others = {s: v["exact_match"] for s, v in ctx.before["others"].items()}
    after_others = {s: v["exact_match"] for s, v in others.items()}
    flops = None
    if getattr(tuned, "hellora_adapter", None) is not None:
        flops = adapter_flops(tuned, after)["forward_per_token"]
    return {
        "entropy_before": routing_entropy(before), "entropy_after": routing_entropy(after),
        "hot_jaccard_before_after": hot_set_jaccard(before, after, ctx.cfg.top_k),
        "top_k_share_after": list(after.top_k_share(ctx.cfg.top_k).values()),
        "others_before": before_others, "others_after": after_others,
        "others_before_mean": sum(before_others.values()) / max(1, len(before_others)),
        "others_after_mean": sum(after_others.values()) / max(1, len(after_others)),
        "adapter_forward_flops_per_token": flops,
    }


def final_run(ctx: TargetContext, arm_name: str, ft_seed: int, lr: float) -> Path:
    """Fine-tune, score on the test split, measure the diagnostics, write the run folder; skipped when finished."""
    from hellora.adapters.io import save_adapter

    arm = ARMS[arm_name]
    folder = run_folder(ctx.out, ctx.target, arm_name, ctx.base_seed, ft_seed)
    if (folder / "study_run.json").is_file():
        return folder
    tuned, result, placement, fraction = fine_tune(ctx, arm_name, ft_seed, lr)
    if result is not None:
        test, after = score_with_routing(tuned, ctx.data.test)
        val = score_features(tuned, ctx.data.val)
        others = {s: score_features(tuned, f) for s, f in ctx.data.others.items()}
        diagnostics = _diagnostics(ctx, tuned, after, others)
    else:  # a diverged run counts as a failure of the arm at its chosen lr, never silently dropped
        test = val = {"exact_match": 0.0, "token_accuracy": 0.0, "n": len(ctx.data.test)}
        others, diagnostics, after = {}, {}, None
    params = count_parameters(tuned)
    record = {
        "target": ctx.target, "arm": arm_name, "base_seed": ctx.base_seed, "ft_seed": ft_seed, "lr": lr,
        "diverged": result is None, "test": test, "val": val, "others": others,
        "trainable": params["trainable"], "total": params["total"], "trainable_pct": params["trainable_pct"],
        "samples_per_s": result.samples_per_s if result else None,
        "median_step_s": result.median_step_s if result else None,
        "final_loss": result.final_loss if result else None,
        "hot_experts": {str(k): v for k, v in placement.experts.items()} if placement else None,
        "warmup_fraction": fraction, "diagnostics": diagnostics,
        "after_routing": after.to_dict() if after else None,
    }
    adapter = {"method": arm.method, "variant": arm.variant, "r": ctx.cfg.rank, "placement": arm.placement}
    selection = {"strategy": arm.strategy or "layer", "seed": 1000 * ctx.base_seed + ft_seed}
    if arm.k_factor != 1.0:
        selection["k"] = ctx.cfg.hot_k(arm.k_factor)
    config = {"model": {"name": "proxy-moe"}, "data": {"task": f"proxy-{ctx.target}"}, "adapter": adapter,
              "selection": selection, "train": {"learning_rate": lr, "seed": ft_seed},
              "study": {"arm": arm_name, "target": ctx.target, "base_seed": ctx.base_seed, "ft_seed": ft_seed}}
    if fraction is not None:
        config["profile"] = {"mode": "warmup", "fraction": fraction}
    with atomic_dir(folder) as tmp:
        atomic_write_text(tmp / "config.yaml", yaml.safe_dump(config, sort_keys=False))
        atomic_write_json(tmp / "eval" / "eval_proxy.json", {"task": "proxy", "scores": {
            "accuracy": test["exact_match"], "others": diagnostics.get("others_after_mean", 0.0)}})
        atomic_write_json(tmp / "run.json", {
            "status": "finished", "method": arm.method, "meta": run_metadata(ft_seed),
            "study": config["study"],
            "steps": {"attach": {k: params[k] for k in ("trainable", "total", "trainable_pct")},
                      "train": {k: v for k, v in (result.to_dict() if result else {}).items() if k != "losses"}}})
        if arm.rules.starts_lori_s and result is not None:
            save_adapter(tuned, tmp / "adapter", base_model="proxy-moe")
        atomic_write_json(tmp / "study_run.json", record)
    return folder
