"""The paper's profiling stage: a short LoRA warm-up on a seeded p% sample with routing counters on.

LoRA (all experts, attention and router, the run's rank and alpha) trains for one epoch over the sample while
`ExpertActivationCounter` counts every training forward pass (gradient-checkpoint re-runs are not counted twice).
The warm-up adapter is then discarded (`remove_adapters`) and the main run starts from the base model. Counts
from all processes are summed (`profiling.reduce.reduce_counts`); the wall time is recorded as the method's
overhead. With profile.until_stable the warm-up ends at the first optimizer step after which every layer's hot
set has been stable for profile.stable_window steps (`profiling/stable.py`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from typing import TYPE_CHECKING

from hellora.adapters import AdapterConfig, attach_adapters, remove_adapters
from hellora.config import RunConfig
from hellora.models.families import describe_moe_model
from hellora.models.fingerprint import config_fingerprint
from hellora.profiling import ExpertActivationCounter, ExpertProfile
from hellora.profiling.reduce import counts_stop, reduce_counts
from hellora.profiling.stable import stability_tracker
from hellora.loop.training import resolve_steps, train_loop
from hellora.utils.meta import run_metadata
from hellora.choices import Method, Targets

if TYPE_CHECKING:
    from accelerate import Accelerator
    from torch import nn

log = logging.getLogger(__name__)


def warmup_batch_shape(requested: int, num_examples: int, micro: int, world: int) -> tuple[int, int]:
    """(global batch, micro-batch) of the warm-up: the largest multiple of micro x world not above `requested`
    that still gives one step on the sample, the micro-batch first shrunk to fit a sample smaller than it."""
    micro = max(1, min(micro, num_examples // max(1, world)))
    unit = micro * world
    fit = (num_examples // unit) * unit
    return max(unit, min(requested, fit)), micro


def warmup_profile(model: nn.Module, features: list[dict], config: RunConfig, *, accelerator: Accelerator,
                   pad_token_id: int,
                   source: dict, progress: bool = True) -> ExpertProfile:
    spec = describe_moe_model(model)
    world = accelerator.num_processes
    cfg = config.train
    assert cfg.batch_size is not None  # a run's config is resolved (RunConfig.resolved) before it profiles
    batch, micro = warmup_batch_shape(cfg.batch_size, len(features), cfg.micro_batch_size, world)
    if batch != cfg.batch_size:
        log.info("warm-up: global batch %d, micro-batch %d (the %d-example sample is smaller than train.batch_size "
                 "%d)", batch, micro, len(features), cfg.batch_size)
    warm_cfg = dataclasses.replace(cfg, epochs=1.0, max_steps=None, batch_size=batch, micro_batch_size=micro,
                                   save_steps=0, report_to=[])
    lora = AdapterConfig(method=Method.LORA, r=config.adapter.r, alpha=config.adapter.alpha, targets=Targets.ALL,
                         seed=config.adapter.seed)
    attach_adapters(model, lora, None, spec)
    tracker = stability_tracker(config, spec.top_k)
    planned = resolve_steps(warm_cfg, len(features), world)[2]
    start = time.perf_counter()
    try:
        with ExpertActivationCounter(model, spec) as counter:
            stop = counts_stop(tracker, accelerator) if tracker else None
            result = train_loop(model, features, warm_cfg, accelerator=accelerator, run_dir=None,
                                pad_token_id=pad_token_id, name="warm-up", progress=progress,
                                should_stop=(lambda done: stop(counter)) if stop else None)
    finally:
        remove_adapters(model)
        accelerator.free_memory()
    wall = time.perf_counter() - start
    counts, mass, tokens = reduce_counts(accelerator, counter.counts, counter.mass, counter.tokens)
    meta = run_metadata(cfg.seed)
    meta.update(wall_time_s=round(wall, 3), warmup_steps=result.steps, warmup_loss=result.final_loss,
                processes=world)
    if tracker is not None:
        meta["until_stable"] = tracker.record(planned, config.profile.fraction, wall)
        source = {**source, "fraction_used": meta["until_stable"]["fraction_used"]}
    return counter.to_profile("warmup", counts=counts, mass=mass, tokens=tokens, model_id=config.model.name,
                              fingerprint=config_fingerprint(model.config), source=source, meta=meta)
