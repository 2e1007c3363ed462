"""Adapter entries of a method on a model, counted from its shapes (`hellora.models.shapes`): no torch.

The same rules as `attach_adapters` followed by `count_parameters` (accounting.py), written as arithmetic. The
method object (`AdapterConfig.rules`, `hellora.methods`) gives the entries of the adapter on one (out, in) weight
(`adapter_entries`: LoRA A (r, in) + B (out, r); DoRA + a magnitude (out,); LoRAMoE N pairs + a router (N, in)) and
which of them train (`trainable_by_role`: everything, except LoRI-D's B only and LoRI-S's lori_keep_count of all
B entries, shared over roles in proportion to their B entries, as the meta-device count does).

Adapted weights, per `AdapterConfig.targets` and method: attention (q/k/v/o, "all" only), the router ("gate" and
"all", where the family adapts it), the experts' gate, up and down (the k hot ones for hot-expert methods, all
otherwise), shared experts and dense MLPs (always). Full fine-tuning trains every base weight and adds none.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

from hellora.adapters.config import AdapterConfig
from hellora.methods.counts import lori_keep_count, split_kept
from hellora.models.shapes import Matrix, ModelShapes

__all__ = ["ROLES", "adapted_matrices", "adapter_entries", "count_from_shapes", "counted", "in_role_order",
           "lori_keep_count", "split_kept"]


ROLES = ("attention", "router", "experts", "shared", "dense", "base")  # the order every count reports roles in


def in_role_order(counts: Mapping[str, int]) -> dict[str, int]:
    """`counts` with its roles in `ROLES` order (any other role after them), so both counts print alike."""
    return {role: counts[role] for role in (*ROLES, *sorted(set(counts) - set(ROLES))) if role in counts}


def adapter_entries(matrix: Matrix, config: AdapterConfig) -> tuple[int, int]:
    """(all entries, B entries) of the adapter `config` puts on one (out, in) weight."""
    return config.rules.adapter_entries(matrix, config)


def adapted_matrices(shapes: ModelShapes, config: AdapterConfig, hot_k: int) -> list[tuple[int, str, Matrix, int]]:
    """(layer index, role, weight, copies) of every weight `config` adapts; an expert's gate, up and down come
    with `hot_k` copies for hot-expert methods, one per expert otherwise."""
    adapt_router = config.adapts_router(fused=not shapes.router_modules)
    out = []
    for index, layer in enumerate(shapes.layers):
        if config.adapts_attention:
            out += [(index, "attention", m, 1) for m in layer.attention]
        out += [(index, "dense", m, 1) for m in layer.dense]
        if not layer.is_moe:
            continue
        out += [(index, "shared", m, 1) for m in layer.shared]
        if adapt_router:
            out.append((index, "router", layer.router, 1))
        experts = hot_k if config.rules.adapts_hot_experts else layer.num_experts
        out += [(index, "experts", m, experts) for m in layer.expert]
    return out


def count_from_shapes(shapes: ModelShapes, config: AdapterConfig, hot_k: int) -> dict:
    """{"trainable", "total", "trainable_pct", "by_role", "adapter_total"}, as `count_parameters` of the model
    with `config`'s adapters attached would give."""
    base = shapes.size
    rules = config.rules
    if rules.trains_whole_model:
        return counted({"base": base}, base, adapter_total=0)
    entries, b_entries = Counter(), Counter()
    for _, role, matrix, copies in adapted_matrices(shapes, config, hot_k):
        total, b = adapter_entries(matrix, config)
        entries[role] += copies * total
        b_entries[role] += copies * b
    by_role = rules.trainable_by_role(entries, b_entries, config)
    adapter_total = sum(entries.values())
    return counted(by_role, base + adapter_total, adapter_total)


def counted(by_role: Mapping[str, int], total: int, adapter_total: int) -> dict:
    """The count's record: {"trainable", "total", "trainable_pct", "by_role", "adapter_total"}."""
    trainable = sum(by_role.values())
    return {"trainable": trainable, "total": total, "trainable_pct": 100.0 * trainable / total if total else 0.0,
            "by_role": in_role_order(by_role), "adapter_total": adapter_total}
