"""Adapter FLOPs per token (the paper's Table 3), from the adapters attached to a model and measured routing.

Only the adapters' own work is counted (the backbone's is the same for every method). An adapter applied to one
input row costs, in multiply-adds: LoRA r*(in + out); LoRAMoE N*r*(in + out) + N*in (its router). FLOPs are twice
that. Per token:
    attention, router, shared-expert and dense-MLP adapters run once;
    an expert's adapters run once per assignment of the token to that expert, i.e. with weight
    counts[l][e] / tokens[l] from a profile (uniform top_k / E without one).
So hot-expert placement saves FLOPs in proportion to the routing share of the cold experts, not to their number:
this is why the paper's FLOPs reduction (33-39%) is smaller than its parameter reduction. Training FLOPs are taken
as 3x forward (forward, input gradients, weight gradients), as the paper does.
"""

from __future__ import annotations

from collections import Counter

from torch import nn

from hellora.adapters.experts import HotExpertsLoRA
from hellora.adapters.inject import adapter_layers
from hellora.models.families import describe_moe_model
from hellora.profiling.profile import ExpertProfile
from hellora.utils.errors import HelloraError


def _row_macs(in_features: int, out_features: int, weights) -> int:
    """Multiply-adds of one adapter applied to one row, from its weight shapes."""
    r = weights.lora_A.shape[-2]
    router = getattr(weights, "lora_router", None)
    if router is not None:  # LoRAMoE: N LoRA experts + the mixing router
        n = router.shape[-2]
        return n * r * (in_features + out_features) + n * in_features
    return r * (in_features + out_features)


def _linear_dims(layer) -> tuple[int, int]:
    base = layer.base_layer
    if hasattr(base, "in_features"):
        return base.in_features, base.out_features
    num_experts, hidden = base.weight.shape  # router: raw weight (E, H)
    return hidden, num_experts


def _expert_share(profile: ExpertProfile | None, layer_index: int, expert: int, top_k: int, num_experts: int) -> float:
    """Assignments per token of `expert` in `layer_index`."""
    if profile is None:
        return top_k / num_experts
    counts = profile.counts_by_layer()[layer_index]
    tokens = profile.tokens[profile.layers.index(layer_index)] if profile.tokens else sum(counts) / top_k
    return counts[expert] / tokens if tokens else 0.0


def adapter_flops(model: nn.Module, profile: ExpertProfile | None = None) -> dict:
    """{"forward_per_token", "train_per_token", "by_role"} of the adapters attached to `model`."""
    spec = describe_moe_model(model)
    if profile is not None and (profile.num_experts != spec.num_experts
                                or not set(profile.layers) <= set(spec.moe_layer_indices)):
        raise HelloraError(f"profile: routing counts of another model ({profile.model_id!r}: {profile.num_experts} "
                           f"experts, MoE layers {profile.layers}); profile this model, or pass none (uniform routing)")
    by_experts_path = {m.experts_path: m for m in spec.moe_layers}
    macs: Counter = Counter()
    for path, layer in adapter_layers(model).items():
        if isinstance(layer, HotExpertsLoRA):
            moe = by_experts_path[path]
            h, i = layer.layout.hidden_size, layer.layout.intermediate_size
            per_expert = (_row_macs(h, i, layer.lora_gate) + _row_macs(h, i, layer.lora_up)
                          + _row_macs(i, h, layer.lora_down))
            for e in layer.hot_experts:
                macs["experts"] += per_expert * _expert_share(profile, moe.layer_index, e, moe.top_k, moe.num_experts)
            continue
        in_f, out_f = _linear_dims(layer)
        row = _row_macs(in_f, out_f, layer)
        owner = next((m for p, m in by_experts_path.items() if path.startswith(p + ".")), None)
        if owner is not None:  # a ModuleList expert's linear: runs per assignment to that expert
            expert = int(path[len(owner.experts_path) + 1:].split(".")[0])
            row *= _expert_share(profile, owner.layer_index, expert, owner.top_k, owner.num_experts)
        macs[layer.role] += row
    forward = 2 * sum(macs.values())
    return {"forward_per_token": forward, "train_per_token": 3 * forward,
            "by_role": {role: 2 * v for role, v in macs.items()}}
