"""A run's inputs, each loaded and checked before its run folder is touched: the tokenizer, the model (pretrained, or
a preset's architecture at random init), the tokenized training features, the accelerator, and the checks that
fail early (a dense model, a bad k, a tokenizer larger than the embeddings, a missing placement file).

Used by the pipeline (`hellora train`) and by profiling alone (`hellora profile`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from hellora.config import RunConfig
from hellora.data import encode_pairs, get_task
from hellora.models.families import describe_moe_model
from hellora.models.loading import load_model, load_tokenizer
from hellora.placement import HotExpertPlacement, check_k
from hellora.profiling.profile import ExpertProfile
from hellora.utils.errors import HelloraError


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


def pad_id_of(tokenizer) -> int:
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


def load_run_tokenizer(config: RunConfig):
    return load_tokenizer(config.model.tokenizer or config.model.name, trust_remote_code=config.model.trust_remote_code)


def load_run_model(config: RunConfig):
    """The recipe's model: pretrained weights, or a preset's architecture at random init (seeded by train.seed)."""
    return load_model(config.model.name, dtype=config.model.dtype, trust_remote_code=config.model.trust_remote_code,
                      overrides=config.model.overrides, seed=config.train.seed)


def model_spec(config: RunConfig) -> dict:
    """What rebuilds the run's base model (recorded with the adapter, so export and eval need no --model)."""
    return {"name": config.model.name, "overrides": dict(config.model.overrides), "tokenizer": config.model.tokenizer,
            "trust_remote_code": config.model.trust_remote_code, "dtype": config.model.dtype,
            "cold_experts": config.model.cold_experts.value, "hot_experts": config.model.hot_experts.value}


def build_features(config: RunConfig, tokenizer) -> tuple[list[dict], dict]:
    task = get_task(config.data.task)
    records = task.load(config.data.train, limit=config.data.limit)
    pairs = task.format_records(records)
    features = encode_pairs(tokenizer, pairs, config.data.max_length, config.data.max_prompt_length)
    source = {"task": config.data.task, "data": config.data.train or "hub default", "examples": len(features)}
    return features, source


def check_reference_for_model(path: str, spec) -> None:
    """selection.reference exists, is a profile, and counts this model's MoE layers and experts (before any work)."""
    reference = ExpertProfile.load(path)
    if reference.num_experts != spec.num_experts or sorted(reference.layers) != sorted(spec.moe_layer_indices):
        raise HelloraError(f"selection.reference {path}: routing of {len(reference.layers)} MoE layers x "
                           f"{reference.num_experts} experts, but the model has {len(spec.moe_layer_indices)} x "
                           f"{spec.num_experts}; profile the same model")


def check_run_inputs(config: RunConfig, model, tokenizer) -> None:
    """Fail before any training on a non-MoE model, a bad k, a tokenizer larger than the embeddings, a missing
    placement file, or an eval step that could not run (unknown protocol, missing benchmark file)."""
    spec = describe_moe_model(model)
    if config.selection.k is not None:
        check_k(config.selection.k, spec.num_experts)
    vocab = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > vocab:
        raise HelloraError(f"model.tokenizer has {len(tokenizer)} tokens but the model embeds only {vocab}; "
                           f"use the model's own tokenizer")
    if config.selection.path:
        HotExpertPlacement.load(config.selection.path)  # exists and is a placement, before any work
    elif config.selection.reference:
        check_reference_for_model(config.selection.reference, spec)
    if config.eval.enabled:  # the eval step's protocols and data, before hours of training
        from hellora.eval.run import RECIPE_FIELDS, check_tasks

        ev = config.eval
        check_tasks({t: ev.data.get(t) for t in ev.tasks}, ev.protocol, max_new_tokens=ev.max_new_tokens,
                    num_samples=ev.num_samples, fields=RECIPE_FIELDS)
