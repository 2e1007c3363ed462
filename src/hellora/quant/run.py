"""Quantized experts in a run: checked with the recipe, applied after attach, recorded with the adapter.

    model.cold_experts: nf4      # keep | int8 | nf4, the frozen experts that carry no adapter
    model.hot_experts: keep      # the adapted experts' own frozen weights (nf4: QLoRA-style)

`check_expert_storage` refuses what cannot work before any folder is made; `quantize_for_run` stores the experts
once the adapters (and so the hot sets) are attached; the adapter record keeps both keys (`train.setup.model_spec`),
and `load_adapter` applies them again (`apply_recorded_storage`), so eval --adapter, resume and a merged export see
the base the adapter was trained on.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hellora.utils.errors import HelloraError
from hellora.choices import ExpertPrecision

if TYPE_CHECKING:
    from torch import nn

    from hellora.config import ModelConfig, RunConfig

STORAGE_KEYS = ("cold_experts", "hot_experts")


def check_expert_storage(config: RunConfig, *, sharded: bool = False) -> None:
    """Refuse, naming the field, a quantized-experts recipe that cannot run (`config`: a RunConfig)."""
    model = config.model
    if not model.quantizes_experts:
        return
    field = "model.cold_experts" if model.cold_experts is not ExpertPrecision.KEEP else "model.hot_experts"
    refusal = config.adapter.rules.quantized_experts_refusal
    if refusal:
        raise HelloraError(f"{field}: {refusal}; use keep")
    if sharded:
        raise HelloraError(f"{field}: quantized experts are not sharded by FSDP here (torchao's NF4 shards 2-D "
                           f"weights, hellora stores them per expert); train on one process or use keep")
    from hellora.quant.formats import require_torchao

    require_torchao(field)


def quantize_for_run(model: nn.Module, model_config: ModelConfig) -> nn.Module:
    """Store the model's experts as `model_config` asks (after attach: the adapted experts are the hot ones)."""
    from hellora.quant.apply import adapted_experts, quantize_experts

    return quantize_experts(model, adapted_experts(model), cold=model_config.cold_experts,
                            hot=model_config.hot_experts)


def recorded_storage(record: dict) -> dict[str, ExpertPrecision]:
    """The expert storage an adapter record names (keep for records written before it was recorded)."""
    spec = record.get("model") or {}
    if not isinstance(spec, dict):
        raise HelloraError("adapter record: 'model' must be a mapping")
    return {key: ExpertPrecision.parse(spec.get(key, ExpertPrecision.KEEP.value), f"adapter record: model.{key}")
            for key in STORAGE_KEYS}


def apply_recorded_storage(model: nn.Module, record: dict) -> nn.Module:
    """Quantize `model`'s experts as the adapter record says they were during training (after attach)."""
    from hellora.quant.apply import adapted_experts, quantize_experts

    storage = recorded_storage(record)
    return quantize_experts(model, adapted_experts(model), cold=storage["cold_experts"], hot=storage["hot_experts"])


def storage_label(storage: dict) -> str:
    """'' when nothing is quantized, else e.g. ' cold=nf4' or ' cold=nf4 hot=nf4' (run labels in reports)."""
    parts = [f"{key.split('_')[0]}={value}" for key, value in storage.items()
             if key in STORAGE_KEYS and isinstance(value, str) and value != ExpertPrecision.KEEP]
    return (" " + " ".join(parts)) if parts else ""
