"""Adapter FLOPs per token (the paper's Table 3), from the adapters attached to a model and measured routing.

Only the adapters' own work is counted (the backbone's is the same for every method). An adapter applied to one
input row costs, in multiply-adds: LoRA r*(in + out); DoRA r*(in + out) + out (its per-row rescale); LoRAMoE
N*r*(in + out) + N*in (its router). FLOPs are twice that. Per token:
    attention, router, shared-expert and dense-MLP adapters run once;
    an expert's adapters run once per assignment of the token to that expert, i.e. with weight
    counts[l][e] / tokens[l] from a profile (uniform top_k / E without one).
So hot-expert placement saves FLOPs in proportion to the routing share of the cold experts, not to their number:
this is why the paper's FLOPs reduction (33-39%) is smaller than its parameter reduction. Training FLOPs are taken
as 3x forward (forward, input gradients, weight gradients), as the paper does.

Two ways to count, one answer: `adapter_flops` walks the adapters attached to a model; `shape_flops` does the same
arithmetic on a preset's shapes (`hellora.models.shapes`) without torch, which is what `hellora flops` uses for
presets (tests hold the two equal). Folders and hub ids are counted on the meta-device model.

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

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Mapping

from hellora.profiling.profile import ExpertProfile
from hellora.utils.errors import HelloraError

if TYPE_CHECKING:
    from torch import nn

    from hellora.adapters.config import AdapterConfig
    from hellora.models.shapes import ModelShapes


def _row_macs(in_features: int, out_features: int, weights) -> int:
    """Multiply-adds of one adapter applied to one row, from its weight shapes."""
    r = weights.lora_A.shape[-2]
    router = getattr(weights, "lora_router", None)
    if router is not None:  # LoRAMoE: N LoRA experts + the mixing router
        n = router.shape[-2]
        return n * r * (in_features + out_features) + n * in_features
    magnitude = out_features if getattr(weights, "lora_magnitude", None) is not None else 0  # DoRA: m / ||W'|| per row
    return r * (in_features + out_features) + magnitude


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


def _check_profile(profile: ExpertProfile | None, num_experts: int, moe_layers: list[int]) -> None:
    if profile is not None and (profile.num_experts != num_experts or not set(profile.layers) <= set(moe_layers)):
        raise HelloraError(f"profile: routing counts of another model ({profile.model_id!r}: {profile.num_experts} "
                           f"experts, MoE layers {profile.layers}); profile this model, or pass none (uniform routing)")


def _per_token(macs: Mapping[str, float]) -> dict:
    forward = 2 * sum(macs.values())
    return {"forward_per_token": forward, "train_per_token": 3 * forward,
            "by_role": {role: 2 * v for role, v in macs.items()}}


def adapter_flops(model: nn.Module, profile: ExpertProfile | None = None) -> dict:
    """{"forward_per_token", "train_per_token", "by_role"} of the adapters attached to `model`."""
    from hellora.adapters.experts import HotExpertsLoRA
    from hellora.adapters.inject import adapter_layers
    from hellora.models.families import describe_moe_model

    spec = describe_moe_model(model)
    _check_profile(profile, spec.num_experts, spec.moe_layer_indices)
    by_experts_path = {m.experts_path: m for m in spec.moe_layers}
    macs: defaultdict[str, float] = defaultdict(int)  # an int count until a routing share makes it a float
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
        row: float = _row_macs(in_f, out_f, layer)
        owner = next((m for p, m in by_experts_path.items() if path.startswith(p + ".")), None)
        if owner is not None:  # a ModuleList expert's linear: runs per assignment to that expert
            expert = int(path[len(owner.experts_path) + 1:].split(".")[0])
            row *= _expert_share(profile, owner.layer_index, expert, owner.top_k, owner.num_experts)
        macs[layer.role] += row
    return _per_token(macs)


def shape_flops(shapes: ModelShapes, config: AdapterConfig, experts: dict[int, list[int]],
                profile: ExpertProfile | None = None) -> dict:
    """`adapter_flops` of `config`'s adapters on a model of `shapes`, without torch: an adapter applied to one row
    costs as many multiply-adds as it has entries (LoRA r*(in+out); LoRAMoE N*r*(in+out) + N*in); `experts` lists
    the adapted experts of each MoE layer (by layer index), each weighted by its routing share."""
    from hellora.adapters.shape_count import adapted_matrices, adapter_entries

    _check_profile(profile, shapes.num_experts, shapes.moe_layer_indices)
    macs: defaultdict[str, float] = defaultdict(int)  # an int count until a routing share makes it a float
    for index, role, matrix, _ in adapted_matrices(shapes, config, hot_k=0):
        row: float = adapter_entries(matrix, config)[0]
        if role == "experts":
            layer = shapes.layers[index]
            row *= sum(_expert_share(profile, index, e, shapes.top_k, layer.num_experts) for e in experts[index])
        macs[role] += row
    return _per_token(macs)


def _adapter_rank(model: nn.Module) -> int:
    import torch

    from hellora.adapters.experts import HotExpertsLoRA
    from hellora.adapters.inject import adapter_layers

    for layer in adapter_layers(model).values():
        weights = layer.lora_gate if isinstance(layer, HotExpertsLoRA) else layer
        lora_a = weights.lora_A
        assert isinstance(lora_a, torch.Tensor)  # every adapter's A is a parameter: (..., r, in)
        return int(lora_a.shape[-2])
    raise HelloraError("flops: the model has no adapters attached")


def paper_convention(model: nn.Module, exact: dict) -> dict:
    """Table 3's convention from `exact` (`adapter_flops` of the same model): see the module docstring.

    Attention is unchanged (every layer has it); router, routed-expert and shared-expert FLOPs are taken per MoE
    layer and counted on every decoder layer; a dense MLP's adapters are dropped (its layer counts as MoE).
    A model without router adapters gets 2*r*(hidden + experts) per layer, the cost of a rank-r router adapter.
    """
    from hellora.models.families import describe_moe_model

    import torch

    spec = describe_moe_model(model)
    router_path = spec.moe_layers[0].router_path
    assert router_path is not None  # every MoE layer describe_moe_model finds has its router
    weight = model.get_submodule(router_path).weight
    assert isinstance(weight, torch.Tensor)  # a router's (num_experts, hidden) weight
    num_experts, hidden = weight.shape
    return _paper_rule(exact, len(spec.layers), len(spec.moe_layers), lambda: _adapter_rank(model), hidden,
                       num_experts)


def _paper_rule(exact: dict, n_layers: int, n_moe: int, rank, hidden: int, num_experts: int) -> dict:
    """Table 3's convention on counts of `n_layers` decoder layers, `n_moe` of them MoE (`rank()`: the adapters'
    rank, asked only when the model has no router adapters)."""
    by_role = dict(exact["by_role"])
    by_role.pop("dense", None)
    if "router" not in by_role:
        by_role["router"] = 2 * rank() * (hidden + num_experts) * n_moe
    for role in ("router", "experts", "shared"):
        if role in by_role:
            by_role[role] = by_role[role] * n_layers / n_moe
    forward = sum(by_role.values())
    return {"forward_per_token": forward, "train_per_token": 3 * forward, "by_role": by_role}


@dataclass(frozen=True)
class HotSelection:
    """Which experts a hot-expert method adapts when its FLOPs are counted: `k` per layer (None: the paper's k for
    a preset, `hellora.models.presets`, else the router's top-k), chosen by `strategy` from the routing `profile`
    (None: uniform routing, the first k experts), ranked against `reference` (the routing of the data whose skills
    should be kept) by strategy retention."""

    k: int | None = None
    profile: ExpertProfile | None = None
    strategy: str = "layer"
    reference: ExpertProfile | None = None

    @classmethod
    def read(cls, k: int | None = None, profile: str | Path | ExpertProfile | None = None, strategy: str = "layer",
             reference: str | Path | ExpertProfile | None = None) -> HotSelection:
        """The selection with `profile` and `reference` loaded where given as files; a reference needs a profile."""
        if isinstance(profile, (str, Path)):
            profile = ExpertProfile.load(profile)
        if isinstance(reference, (str, Path)):
            reference = ExpertProfile.load(reference)
        if reference is not None and profile is None:
            raise HelloraError("reference: ranking against a reference profile needs the target's profile too "
                               "(--profile)")
        return cls(k, profile, strategy, reference)


def flops_report(model: str, methods: Iterable[str] = ("lora", "hellora"), *, convention: str = "exact", rank: int | None = None,
                 hot: HotSelection = HotSelection(), trust_remote_code: bool = False) -> dict:
    """Adapter FLOPs per token of each method on `model` (a preset, folder or hub id; config only).

    `hot` says which experts hellora adapts (`HotSelection.read(k, profile, strategy, reference)`; default: the
    paper's or the router's k, uniform routing, the first k experts). rank defaults to each method's paper rank.
    Returns {"model", "convention", "k", "routing", "rows": {method: {"forward_per_token", "train_per_token",
    "by_role", "vs_lora_pct"}}}.
    """
    from hellora.adapters.config import AdapterConfig
    from hellora.methods.registry import get_method
    from hellora.models.presets import PRESETS
    from hellora.choices import Convention, Method

    convention = Convention.parse(convention, "convention")
    chosen = [Method.parse(m.strip() if isinstance(m, str) else m, "methods") for m in methods]
    outside_table = [m for m in chosen if not get_method(m).in_paper_flops_table]
    if convention is Convention.PAPER and outside_table:
        raise HelloraError("convention paper: Table 3 defines LoRA and HELLoRA only; use --convention exact for "
                           f"{outside_table[0]}")
    rows, hot_k = {}, None
    for method in chosen:
        config = AdapterConfig(method=method, r=rank or get_method(method).default_rank)
        paper = convention is Convention.PAPER
        if model in PRESETS:  # config values alone: no torch
            from hellora.models.shapes import model_shapes

            rows[str(method)], hot_k = method_flops_from_shapes(model, model_shapes(PRESETS[model].config), config,
                                                                hot, paper=paper)
        else:
            rows[str(method)], hot_k = method_flops_on_meta(model, config, hot, paper=paper,
                                                            trust_remote_code=trust_remote_code)
    base = rows.get("lora", {}).get("forward_per_token")
    for row in rows.values():
        row["vs_lora_pct"] = round(100 * (row["forward_per_token"] / base - 1), 2) if base else None
    return {"model": model, "convention": convention, "k": hot_k,
            "routing": "measured" if hot.profile is not None else "uniform", "rows": rows}


def _adapted_experts(config: AdapterConfig, hot: HotSelection, hot_k: int, moe_layers: list[int], num_experts: int):
    """A hot-expert method's placement: selected from the profile, or the first k experts (uniform routing); None
    for methods that adapt every expert."""
    from hellora.placement import first_k_placement

    if not config.rules.adapts_hot_experts:
        return None
    if hot.profile is None:
        return first_k_placement(moe_layers, num_experts, hot_k)
    return hot.profile.select(hot.strategy, hot_k, reference=hot.reference)


def method_flops_on_meta(model: str, config: AdapterConfig, hot: HotSelection, *, paper: bool,
                         trust_remote_code: bool = False, overrides: dict | None = None) -> tuple[dict, int]:
    """(row, hot k) of one method: its adapters attached to `model` built on the meta device (config `overrides`
    applied), then counted; `paper` applies Table 3's convention."""
    from hellora.adapters.inject import attach_adapters
    from hellora.models.families import describe_moe_model
    from hellora.models.loading import meta_model
    from hellora.models.presets import default_hot_k

    net = meta_model(model, trust_remote_code=trust_remote_code, overrides=overrides)
    spec = describe_moe_model(net)
    hot_k = default_hot_k(hot.k, model, spec.top_k)
    placement = _adapted_experts(config, hot, hot_k, spec.moe_layer_indices, spec.num_experts)
    attach_adapters(net, config, placement, spec)
    row = adapter_flops(net, hot.profile)
    return (paper_convention(net, row) if paper else row), hot_k


def method_flops_from_shapes(model: str, shapes: ModelShapes, config: AdapterConfig, hot: HotSelection, *,
                             paper: bool) -> tuple[dict, int]:
    """`method_flops_on_meta` from a preset's shapes (`model` names it for the paper's k), without torch."""
    from hellora.models.presets import default_hot_k

    hot_k = default_hot_k(hot.k, model, shapes.top_k)
    moe_layers = shapes.moe_layer_indices
    placement = _adapted_experts(config, hot, hot_k, moe_layers, shapes.num_experts)
    experts = placement.experts if placement else {i: list(range(shapes.num_experts)) for i in moe_layers}
    row = shape_flops(shapes, config, experts, hot.profile)
    if paper:
        row = _paper_rule(row, len(shapes.layers), len(moe_layers), lambda: config.r, shapes.hidden,
                          shapes.num_experts)
    return row, hot_k
