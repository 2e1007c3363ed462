"""A run's inputs, each loaded and checked before its run folder is touched: the tokenizer, the model (pretrained, or
a preset's architecture at random init), the tokenized training features, the accelerator, and the checks that
fail early (a dense model, a bad k, a tokenizer larger than the embeddings, a missing placement file).

Used by the pipeline (`hellora train`) and by profiling alone (`hellora profile`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from hellora.choices import MixedPrecision
from hellora.config import RunConfig
from hellora.data import encode_pairs, get_task
from hellora.models.families import MoEModelSpec, describe_moe_model
from hellora.models.fingerprint import config_fingerprint
from hellora.models.loading import load_model, load_tokenizer
from hellora.placement import HotExpertPlacement, check_k
from hellora.profiling.profile import ExpertProfile
from hellora.utils.errors import HelloraError

if TYPE_CHECKING:
    from accelerate import Accelerator
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from hellora.models.families import MoEModelSpec

log = logging.getLogger(__name__)


def _mixed_precision(setting: MixedPrecision) -> str:
    """accelerate's setting as plain text (auto decided here: bf16 where CUDA supports it, else none)."""
    if setting is MixedPrecision.AUTO:
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"
    return setting.value


def make_accelerator(config: RunConfig) -> Accelerator:
    """The run's accelerator: CPU where no GPU exists, its mixed precision, trackers and project folder."""
    from accelerate import Accelerator

    run = Path(config.output_dir)
    # cpu=True lets torchrun/accelerate launch run several CPU processes (gloo) where no GPU exists.
    return Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=_mixed_precision(config.train.mixed_precision),
                       log_with=config.train.report_to or None, project_dir=str(run))


def pad_id_of(tokenizer: PreTrainedTokenizerBase) -> int:
    """The id batches are padded with: the tokenizer's pad token, else 0 (padding is masked out anyway)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


def load_run_tokenizer(config: RunConfig) -> PreTrainedTokenizerBase:
    """The recipe's tokenizer: model.tokenizer if set ("tiny" included), else the model's own."""
    return load_tokenizer(config.model.tokenizer or config.model.name, trust_remote_code=config.model.trust_remote_code)


def load_run_model(config: RunConfig) -> PreTrainedModel:
    """The recipe's model: pretrained weights, or a preset's architecture at random init (seeded by train.seed)."""
    return load_model(config.model.name, dtype=config.model.dtype, trust_remote_code=config.model.trust_remote_code,
                      overrides=config.model.overrides, seed=config.train.seed)


def model_spec(config: RunConfig) -> dict:
    """What rebuilds the run's base model (recorded with the adapter, so export and eval need no --model)."""
    return {"name": config.model.name, "overrides": dict(config.model.overrides), "tokenizer": config.model.tokenizer,
            "trust_remote_code": config.model.trust_remote_code, "dtype": config.model.dtype,
            "cold_experts": config.model.cold_experts.value, "hot_experts": config.model.hot_experts.value}


def build_features(config: RunConfig, tokenizer: PreTrainedTokenizerBase) -> tuple[list[dict], dict]:
    """(tokenized training examples, the data's source record). The data summary (`hellora.data.summary`: empty,
    unknown-character and truncated examples, with counts) is returned under source["summary"]; callers pop it
    (it is not part of a profile's source) and pass it to `log_data_summary` once every input was checked."""
    from hellora.data.summary import summarize_pairs

    task = get_task(config.data.task)
    records = task.load(config.data.train, limit=config.data.limit)
    pairs = task.format_records(records)
    features = encode_pairs(tokenizer, pairs, config.data.max_length, config.data.max_prompt_length)
    summary = summarize_pairs(tokenizer, pairs, features, config.data.max_length, config.data.max_prompt_length)
    source = {"task": config.data.task, "data": config.data.train or "hub default", "examples": len(features),
              "summary": summary}
    return features, source


def log_data_summary(summary: dict) -> None:
    """The data summary's one line: a warning when some examples are empty, unknown to the tokenizer or truncated."""
    from hellora.data.summary import format_summary

    line, problems = format_summary(summary)
    (log.warning if problems else log.info)(line)


def check_reference_for_model(path: str, spec: MoEModelSpec) -> None:
    """selection.reference exists, is a profile, and counts this model's MoE layers and experts (before any work)."""
    reference = ExpertProfile.load(path)
    if reference.num_experts != spec.num_experts or sorted(reference.layers) != sorted(spec.moe_layer_indices):
        raise HelloraError(f"selection.reference {path}: routing of {len(reference.layers)} MoE layers x "
                           f"{reference.num_experts} experts, but the model has {len(spec.moe_layer_indices)} x "
                           f"{spec.num_experts}; profile the same model")


def check_run_inputs(config: RunConfig, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> None:
    """Fail before any training on a non-MoE model, a bad k, a tokenizer larger than the embeddings, or a missing
    placement file (the eval step's inputs are checked by the pipeline, which owns that step: `check_eval_step`)."""
    spec = describe_moe_model(model)
    if config.selection.k is not None:
        check_k(config.selection.k, spec.num_experts)
    embedding = model.get_input_embeddings().weight
    assert isinstance(embedding, torch.Tensor)  # (vocab, hidden)
    vocab = embedding.shape[0]
    if len(tokenizer) > vocab:
        raise HelloraError(f"model.tokenizer has {len(tokenizer)} tokens but the model embeds only {vocab}; "
                           f"use the model's own tokenizer")
    fits = (spec.moe_layer_indices, spec.num_experts, config_fingerprint(model.config))
    if config.selection.path:  # a placement (or profile) of this model, checked before the run folder is made
        HotExpertPlacement.load(config.selection.path).check_fits(*fits, f"selection.path {config.selection.path}")
    elif config.selection.reference:
        check_reference_for_model(config.selection.reference, spec)
    if config.profile.path and config.adapter.rules.chooses_hot_experts:
        ExpertProfile.load(config.profile.path).check_fits(*fits, f"profile.path {config.profile.path}")
