"""Forward-only profiling: count expert routing over a dataset with no training.

The paper profiles during a short LoRA warm-up on p% of the data (see `hellora.profiling.warmup`); forward-only
profiling is the cheap alternative (no backward, no optimizer), and its hot sets can be compared with the
warm-up's through `compare_profiles`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping

import torch
from torch import nn

from hellora.models.families import describe_moe_model
from hellora.models.fingerprint import config_fingerprint, model_name
from hellora.profiling.counter import ExpertActivationCounter
from hellora.profiling.profile import ExpertProfile
from hellora.utils.meta import run_metadata
from hellora.utils.progress import progress_bar

_MODEL_INPUTS = ("input_ids", "attention_mask", "position_ids", "inputs_embeds")


@torch.no_grad()
def profile_experts(
    model: nn.Module, batches: Iterable[Mapping[str, torch.Tensor] | None], *, source: dict | None = None,
    model_id: str | None = None, progress: bool = True, total: int | None = None,
    should_stop: Callable[[ExpertActivationCounter], bool] | None = None,
) -> ExpertProfile:
    """Run `model` over `batches` (dicts with input_ids and attention_mask) and count routing per layer.

    Labels and other keys are ignored; batches are moved to the model's device. `should_stop(counter)`, called
    after each batch, ends the pass early (stop-when-stable profiling, `stable.py`); a None batch runs nothing
    but still calls it (a process with one batch fewer than the others keeps step with their reductions).
    """
    spec = describe_moe_model(model)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    start = time.perf_counter()
    try:
        with ExpertActivationCounter(model, spec) as counter:
            for batch in progress_bar(batches, desc="profiling experts", disable=not progress, total=total,
                                      unit="batch"):
                if batch is not None:
                    inputs = {k: v.to(device) for k, v in batch.items() if k in _MODEL_INPUTS}
                    model(**inputs, use_cache=False)
                if should_stop is not None and should_stop(counter):
                    break
    finally:
        model.train(was_training)
    meta = run_metadata()
    meta["wall_time_s"] = round(time.perf_counter() - start, 3)
    return counter.to_profile("forward", model_id=model_id or model_name(model),
                              fingerprint=config_fingerprint(model.config), source=dict(source or {}), meta=meta)
