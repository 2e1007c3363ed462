"""The pipeline's profiling stage: which sample is profiled, how (warm-up or forward), the one multi-process
reduction of the counts, stop-when-stable, and `hellora profile` (profiling alone).

    sample, source = profile_sample(config, features, source)       # the seeded profile.fraction
    profile = forward_profile(model, sample, config, pad_id, source, accelerator, progress)
    profile = profile_stage(config, run, model, features, source, accelerator, pad_id, recorder, progress)

Every process counts its own batches; `reduce_counts` sums counts, mass and tokens over processes, the only
place profiling talks across processes (`reduce.py`; the warm-up in `warmup.py` uses it too). With `profile.until_stable`
the running sums are reduced after every batch and every process stops at the same one (`stable.py`).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import torch

from hellora.profiling.forward import profile_experts
from hellora.profiling.profile import ExpertProfile
from hellora.profiling.reduce import counts_stop, reduce_counts
from hellora.profiling.stable import stability_tracker
from hellora.profiling.warmup import warmup_profile
from hellora.loop.run_inputs import (build_features, check_run_inputs, load_run_model, load_run_tokenizer,
                                     log_data_summary, make_accelerator, pad_id_of)
from hellora.utils.errors import HelloraError
from hellora.choices import ProfileMode

if TYPE_CHECKING:
    from accelerate import Accelerator
    from torch import nn

    from hellora.config import RunConfig

log = logging.getLogger(__name__)


class StepRecorder(Protocol):
    """What the profiling stage asks of the run's recorder (`train.run_folder.RunRecorder`)."""

    @property
    def run(self) -> Path: ...

    def step(self, name: str, **fields: Any) -> None: ...


def planned_profile_mode(config: RunConfig, run: Path) -> ProfileMode | None:
    """How this run will count routing, decided once before any work; None when it will not profile now.

    No profiling for methods other than hellora, for HELLoRI-S (it keeps its LoRI-D adapter's placement), with a
    saved placement (selection.path) or profile (profile.path), or when a resumed run's folder already holds its
    placement or profile. A run that needs a profile with profile.mode none is refused here, before its folder
    is made, so the corrected command is not blocked by a half-made run.
    """
    if not config.adapter.chooses_hot_experts or config.selection.path or config.profile.path:
        return None
    if (run / "placement.json").is_file() or (run / "profile.json").is_file():
        return None
    mode = ProfileMode.parse(config.profile.mode, "profile.mode")
    if mode is ProfileMode.NONE:
        raise HelloraError("profile.mode: method 'hellora' needs a profile: use warmup or forward, or set "
                           "profile.path or selection.path (got 'none')")
    return mode


def profile_sample(config: RunConfig, features: list[dict], source: dict) -> tuple[list[dict], dict]:
    """The seeded profile.fraction of the training features that profiling sees (warm-up or forward), in file
    order, and the profile's `source` record naming the data, fraction, seed and sample size."""
    from hellora.data import sample_fraction

    sample = sample_fraction(features, config.profile.fraction, config.profile.seed)
    return sample, {**source, "fraction": config.profile.fraction, "seed": config.profile.seed,
                    "examples": len(sample)}


def forward_profile(model: nn.Module, sample: list[dict], config: RunConfig, pad_id: int, source: dict,
                    accelerator: Accelerator, progress: bool) -> ExpertProfile:
    """Forward-only counts of `sample`, batches dealt round-robin to the processes and summed."""
    from hellora.data import PadCollator
    from hellora.models.families import describe_moe_model

    collate = PadCollator(pad_id)
    size = config.profile.batch_size
    rank, world = accelerator.process_index, accelerator.num_processes
    batches = [sample[i:i + size] for i in range(0, len(sample), size)]
    mine = batches[rank::world]
    rounds = -(-len(batches) // world)
    model.to(accelerator.device)
    tracker = stability_tracker(config, describe_moe_model(model).top_k)
    stop = counts_stop(tracker, accelerator) if tracker else None
    padded = (collate(b) if b is not None else None for b in mine + [None] * (rounds - len(mine)))
    start = time.perf_counter()
    profile = profile_experts(model, padded, source=source, model_id=config.model.name,
                              progress=progress and accelerator.is_main_process, total=rounds, should_stop=stop)
    if world > 1:
        counts, mass, tokens = reduce_counts(accelerator, *(torch.tensor(getattr(profile, f), dtype=d) for f, d in
                                             (("counts", torch.int64), ("mass", torch.float64),
                                              ("tokens", torch.int64))))
        profile.counts, profile.mass, profile.tokens = counts.tolist(), mass.tolist(), tokens.tolist()
    if tracker is not None:
        profile.meta["until_stable"] = tracker.record(rounds, config.profile.fraction, time.perf_counter() - start)
        profile.source["fraction_used"] = profile.meta["until_stable"]["fraction_used"]
    return profile


def run_profiling(config: RunConfig, model: nn.Module, sample: list[dict], source: dict, accelerator: Accelerator,
                  pad_id: int, progress: bool) -> ExpertProfile:
    """Profile `sample` the configured way: the LoRA warm-up (the paper's) or forward passes."""
    mode = config.profile.mode
    if mode == ProfileMode.WARMUP:
        return warmup_profile(model, sample, config, accelerator=accelerator, pad_token_id=pad_id, source=source,
                              progress=progress)
    if mode == ProfileMode.FORWARD:
        return forward_profile(model, sample, config, pad_id, source, accelerator, progress)
    raise HelloraError(f"profile.mode {mode!r}: nothing to profile with (planned_profile_mode refuses this before "
                       f"any work)")


def profile_stage(config: RunConfig, model: nn.Module, features: list[dict], source: dict, accelerator: Accelerator,
                  pad_id: int, recorder: StepRecorder, progress: bool) -> ExpertProfile:
    """The run's profile: profile.path, else profile.json in the run folder (`recorder.run`, a resumed run), else
    profiled now, recorded as the "profile" step and saved there."""
    profile_path = recorder.run / "profile.json"
    if config.profile.path:
        return ExpertProfile.load(config.profile.path)
    if profile_path.is_file():
        return ExpertProfile.load(profile_path)
    sample, src = profile_sample(config, features, source)
    start = time.perf_counter()
    profile = run_profiling(config, model, sample, src, accelerator, pad_id, progress)
    step = {"mode": config.profile.mode, "wall_time_s": round(time.perf_counter() - start, 3), "examples": len(sample)}
    if "until_stable" in profile.meta:
        step["until_stable"] = profile.meta["until_stable"]
    recorder.step("profile", **step)
    if accelerator.is_main_process:
        profile.save(profile_path)
    return profile


def profile_only(config: RunConfig, out: str | Path, *, progress: bool = True) -> ExpertProfile:
    """`hellora profile`: forward-only routing counts of the recipe's model on profile.fraction of its data."""
    if Path(out).exists():
        raise HelloraError(f"{out} exists; choose another --out (nothing was changed)")
    tokenizer = load_run_tokenizer(config)
    features, source = build_features(config, tokenizer)
    summary = source.pop("summary")
    model = load_run_model(config)
    check_run_inputs(config, model, tokenizer)
    log_data_summary(summary)
    sample, src = profile_sample(config, features, source)
    accelerator = make_accelerator(config)
    profile = forward_profile(model, sample, config, pad_id_of(tokenizer), src, accelerator, progress)
    if accelerator.is_main_process:
        profile.save(out)
        few = profile.few_tokens_warning()
        if few:
            log.warning(few)
    return profile
