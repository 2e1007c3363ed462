"""Store a model's frozen routed experts quantized after selection: `quantize_experts(model, hot, cold=, hot=)`.

hellora knows which experts it adapts before training starts, so it can keep those (the hot experts) in the
compute dtype and store only the rest (the cold experts, most of an MoE's weights) as int8 or NF4. Every fused
experts module's `gate_up_proj` and `down_proj` parameter is replaced by a `QuantizedExpertWeight` holding each
expert in its precision; attention, routers, shared experts and dense MLPs are left alone. Storing the hot experts
quantized too (`hot=nf4`) is the QLoRA-style comparison.

A quantized experts module is run by the expert-subset op of the hot-expert wrapper when it has one, else by
`quantized_experts_forward` (installed as the module's forward), both over `kernels/quantized.py`.
`dequantize_experts` puts whole parameters back (for a merged export: what training saw, in the compute dtype).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from functools import partial

import torch
from torch import nn

from hellora.models.families import FusedExpertLayout, describe_moe_model
from hellora.quant.formats import require_torchao
from hellora.quant.store import QuantizedExpertWeight
from hellora.utils.errors import HelloraError
from hellora.choices import ExpertPrecision, ExpertStorage

FUSED_WEIGHTS = ("gate_up_proj", "down_proj")


def _experts_modules(model: nn.Module) -> Iterator[tuple[int, FusedExpertLayout, nn.Module]]:
    """(layer index, layout, experts module) of every fused MoE layer, under a hot-expert wrapper or not."""
    for moe in describe_moe_model(model).moe_layers:
        module = model.get_submodule(moe.experts_path)
        module = getattr(module, "base_layer", module)
        if moe.kind is not ExpertStorage.FUSED or moe.layout is None:
            raise HelloraError(f"model.cold_experts: layer {moe.layer_index} keeps its experts as a ModuleList of "
                               f"MLPs (remote code); only fused experts can be stored quantized (use keep)")
        yield moe.layer_index, moe.layout, module


def adapted_experts(model: nn.Module) -> dict[int, list[int]]:
    """Layer index -> experts that carry adapters (the hot set; every expert for LoRA on all experts)."""
    state = getattr(model, "hellora_adapter", None)
    return {} if state is None else {int(k): list(v) for k, v in state.experts.items()}


def is_quantized(model: nn.Module) -> bool:
    return any(isinstance(m, QuantizedExpertWeight) for m in model.modules())


def quantize_experts(model: nn.Module, hot_experts: Mapping[int, Iterable[int]] | None, *,
                     cold: ExpertPrecision | str = ExpertPrecision.KEEP,
                     hot: ExpertPrecision | str = ExpertPrecision.KEEP) -> nn.Module:
    """Store each MoE layer's hot experts (`hot_experts[layer]`, a placement's `experts` works) as `hot` and the
    others as `cold`, in place; returns `model`. Layers missing from `hot_experts` are all cold. Both `keep`: no-op.
    """
    cold_p: ExpertPrecision = ExpertPrecision.parse(cold, "model.cold_experts")
    hot_p: ExpertPrecision = ExpertPrecision.parse(hot, "model.hot_experts")
    if cold_p is ExpertPrecision.KEEP and hot_p is ExpertPrecision.KEEP:
        return model
    require_torchao("model.cold_experts" if cold_p is not ExpertPrecision.KEEP else "model.hot_experts")
    hot_experts = getattr(hot_experts, "experts", hot_experts) or {}
    if is_quantized(model):
        raise HelloraError("model.cold_experts: this model's experts are already stored quantized")
    for layer, layout, module in _experts_modules(model):
        hot_set = {int(e) for e in hot_experts.get(layer, ())}
        precisions = [hot_p if e in hot_set else cold_p for e in range(layout.num_experts)]
        for name in FUSED_WEIGHTS:
            weight = getattr(module, name)
            if weight.device.type == "meta":
                raise HelloraError("model.cold_experts: the model is on the meta device; load its weights first")
            if weight.requires_grad:
                raise HelloraError(f"model.cold_experts: layer {layer} {name} trains (full fine-tuning); only "
                                   f"frozen experts can be stored quantized")
            store = QuantizedExpertWeight(weight.detach(), precisions)
            delattr(module, name)
            setattr(module, name, store)
        module.forward = partial(quantized_experts_forward, module, layout)
    return model


def dequantize_experts(model: nn.Module) -> nn.Module:
    """Put whole frozen parameters back in place of every quantized weight (the values training saw); returns
    `model`. One layer at a time, so the peak is one layer's experts in the compute dtype beside the rest."""
    for _, _, module in _experts_modules(model):
        for name in FUSED_WEIGHTS:
            store = getattr(module, name)
            if isinstance(store, QuantizedExpertWeight):
                whole = nn.Parameter(store.dequantized(), requires_grad=False)
                delattr(module, name)
                setattr(module, name, whole)
        module.__dict__.pop("forward", None)
    return model


def quantization_record(model: nn.Module) -> dict:
    """How the model's experts are stored, as recorded with a run's adapter: {"cold_experts", "hot_experts"}, each
    keep / int8 / nf4 ("keep" when nothing is quantized)."""
    hot_sets = adapted_experts(model)
    found: dict[str, set[str]] = {"cold_experts": set(), "hot_experts": set()}
    for layer, _, module in _experts_modules(model):
        store = module.gate_up_proj
        if isinstance(store, QuantizedExpertWeight):
            hot = set(hot_sets.get(layer, ()))
            for e, p in enumerate(store.precisions):
                found["hot_experts" if e in hot else "cold_experts"].add(p.value)
    return {key: "+".join(sorted(values)) or ExpertPrecision.KEEP.value for key, values in found.items()}


def _apply_gate(module: nn.Module, gate_up: torch.Tensor) -> torch.Tensor:
    if hasattr(type(module), "_apply_gate"):
        apply_gate = module._apply_gate  # the class's own method (transformers' fused experts)
        assert callable(apply_gate)
        return apply_gate(gate_up)
    gate, up = gate_up.chunk(2, dim=-1)
    act_fn = module.act_fn  # the experts' activation module
    assert callable(act_fn)
    return act_fn(gate) * up


def quantized_experts_forward(module: nn.Module, layout: FusedExpertLayout, hidden_states: torch.Tensor,
                              top_k_index: torch.Tensor, top_k_weights: torch.Tensor) -> torch.Tensor:
    """A fused experts module's forward over its quantized weights: hidden (T, H), top_k_index / weights (T, k)
    -> (T, H), combined as transformers does (in the routing weights' dtype, one cast at the end)."""
    from hellora.kernels.grouped import grouped_linear
    from hellora.kernels.routing import sort_by_expert

    routing = sort_by_expert(top_k_index, layout.num_experts)
    x = hidden_states[routing.token_idx]  # (S, H)
    gu_bias = getattr(module, "gate_up_proj_bias", None) if layout.has_bias else None
    down_bias = getattr(module, "down_proj_bias", None) if layout.has_bias else None
    gate_up = grouped_linear(x, module.gate_up_proj, routing, gu_bias, layout.transposed)  # (S, 2I)
    y = grouped_linear(_apply_gate(module, gate_up), module.down_proj, routing, down_bias, layout.transposed)
    y = y * top_k_weights.reshape(-1)[routing.perm].unsqueeze(-1)
    return routing.unsort_and_combine(y).to(hidden_states.dtype)
