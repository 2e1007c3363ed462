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

Two conventions (`flops_report(convention=...)`, `hellora flops --convention`):
  exact -- the adapters hellora attaches, counted as they run (the default).
  paper -- the paper's Table 3: every decoder layer counted as an MoE layer with an adapted router, i.e. per
           layer q/k/v/o + router + the routed experts + shared experts as one fused MLP. On OLMoE and Mixtral
           (all layers MoE, router adapted) the two agree. On DeepSeekMoE they do not: its layer 0 is a dense MLP
           and hellora leaves its softmax gate unadapted, so exact gives 164.56 MFLOP (LoRA, forward) where the
           paper prints 170.77; counting layer 0 as an average MoE layer and adding a rank-r router adapter to
           every layer reproduces 170.77 exactly. Use `paper` to compare with Table 3, `exact` for real cost.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

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


def _adapter_rank(model: nn.Module) -> int:
    for layer in adapter_layers(model).values():
        weights = layer.lora_gate if isinstance(layer, HotExpertsLoRA) else layer
        return int(weights.lora_A.shape[-2])
    raise HelloraError("flops: the model has no adapters attached")


def paper_convention(model: nn.Module, exact: dict) -> dict:
    """Table 3's convention from `exact` (`adapter_flops` of the same model): see the module docstring.

    Attention is unchanged (every layer has it); router, routed-expert and shared-expert FLOPs are taken per MoE
    layer and counted on every decoder layer; a dense MLP's adapters are dropped (its layer counts as MoE).
    A model without router adapters gets 2*r*(hidden + experts) per layer, the cost of a rank-r router adapter.
    """
    spec = describe_moe_model(model)
    n_layers, n_moe = len(spec.layers), len(spec.moe_layers)
    by_role = dict(exact["by_role"])
    by_role.pop("dense", None)
    if "router" not in by_role:
        moe = spec.moe_layers[0]
        num_experts, hidden = model.get_submodule(moe.router_path).weight.shape
        by_role["router"] = 2 * _adapter_rank(model) * (hidden + num_experts) * n_moe
    for role in ("router", "experts", "shared"):
        if role in by_role:
            by_role[role] = by_role[role] * n_layers / n_moe
    forward = sum(by_role.values())
    return {"forward_per_token": forward, "train_per_token": 3 * forward, "by_role": by_role}


def flops_report(model: str, methods=("lora", "hellora"), *, convention: str = "exact", k: int | None = None,
                 rank: int | None = None, profile: str | Path | ExpertProfile | None = None, strategy: str = "layer",
                 trust_remote_code: bool = False) -> dict:
    """Adapter FLOPs per token of each method on `model` (a preset, folder or hub id; config only).

    k (hellora's hot experts per layer) defaults to the paper's k for the preset (`hellora.models.presets`), else
    the router's top-k. Without `profile`, routing is uniform and hellora's hot experts are the first k.
    Returns {"model", "convention", "k", "routing", "rows": {method: {"forward_per_token", "train_per_token",
    "by_role", "vs_lora_pct"}}}.
    """
    from hellora.adapters import AdapterConfig, attach_adapters
    from hellora.adapters.accounting import DEFAULT_RANK
    from hellora.models.loading import meta_model
    from hellora.models.presets import default_hot_k
    from hellora.placement import first_k_placement
    from hellora.vocab import Convention, Method

    convention = Convention.parse(convention, "convention")
    if isinstance(profile, (str, Path)):
        profile = ExpertProfile.load(profile)
    methods = [Method.parse(m.strip() if isinstance(m, str) else m, "methods") for m in methods]
    if convention is Convention.PAPER and Method.LORAMOE in methods:
        raise HelloraError("convention paper: Table 3 defines LoRA and HELLoRA only; use --convention exact for "
                           "loramoe")
    rows, hot_k = {}, None
    for method in methods:
        net = meta_model(model, trust_remote_code=trust_remote_code)
        spec = describe_moe_model(net)
        hot_k = default_hot_k(k, model, spec.top_k)
        placement = None
        if method is Method.HELLORA:
            placement = (profile.select(strategy, hot_k) if profile else
                         first_k_placement(spec.moe_layer_indices, spec.num_experts, hot_k))
        r = rank or DEFAULT_RANK.get(method, 32)
        attach_adapters(net, AdapterConfig(method=str(method), r=r), placement, spec)
        row = adapter_flops(net, profile)
        rows[str(method)] = paper_convention(net, row) if convention is Convention.PAPER else row
    base = rows.get("lora", {}).get("forward_per_token")
    for row in rows.values():
        row["vs_lora_pct"] = round(100 * (row["forward_per_token"] / base - 1), 2) if base else None
    return {"model": model, "convention": convention, "k": hot_k,
            "routing": "measured" if profile is not None else "uniform", "rows": rows}
