"""Adapter entries of a method on a model, counted from its shapes (`hellora.models.shapes`): no torch.

The same rules as `attach_adapters` followed by `count_parameters` (accounting.py), written as arithmetic. Per
adapted (out, in) weight:

    LoRA pair            A (r, in) + B (out, r)
    DoRA                 + a magnitude (out,)
    LoRAMoE              N pairs + a router (N, in)
    trainable            everything, except LoRI-D (B only) and LoRI-S (lori_keep_count of all B entries,
                         shared over roles in proportion to their B entries, as the meta-device count does)

Adapted weights, per `AdapterConfig.targets` and method: attention (q/k/v/o, "all" only), the router ("gate" and
"all", where the family adapts it), the experts' gate, up and down (the k hot ones for hellora, all for lora and
loramoe), shared experts and dense MLPs (always). Full fine-tuning trains every base weight and adds none.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Mapping

from hellora.adapters.config import AdapterConfig
from hellora.models.shapes import Matrix, ModelShapes
from hellora.vocab import Method, Variant


def lori_keep_count(num_entries: int, density: float) -> int:
    """Entries LoRI-S keeps out of `num_entries`: density * n rounded half up (at least 1 when n > 0)."""
    if num_entries <= 0:
        return 0
    return min(num_entries, max(1, math.floor(density * num_entries + 0.5)))


ROLES = ("attention", "router", "experts", "shared", "dense", "base")  # the order every count reports roles in


def in_role_order(counts: Mapping[str, int]) -> dict[str, int]:
    """`counts` with its roles in `ROLES` order (any other role after them), so both counts print alike."""
    return {role: counts[role] for role in (*ROLES, *sorted(set(counts) - set(ROLES))) if role in counts}


def split_kept(keep: int, b_entries: Mapping[str, int]) -> dict[str, int]:
    """LoRI-S's `keep` trained entries shared over roles in proportion to their B entries (the global mask does not
    exist before training), by largest remainder so the shares add up to `keep` exactly."""
    total = sum(b_entries.values())
    exact = {role: keep * n / total for role, n in b_entries.items()} if total else {}
    shares = {role: math.floor(x) for role, x in exact.items()}
    by_remainder = sorted(exact, key=lambda role: (shares[role] - exact[role], role))
    for role in by_remainder[:keep - sum(shares.values())]:
        shares[role] += 1
    return shares


def adapter_entries(matrix: Matrix, config: AdapterConfig) -> tuple[int, int]:
    """(all entries, B entries) of the adapter `config` puts on one (out, in) weight."""
    r = config.r
    if config.method is Method.LORAMOE:
        n = config.loramoe_experts
        return n * r * (matrix.inp + matrix.out) + n * matrix.inp, n * r * matrix.out
    magnitude = matrix.out if config.variant is Variant.DORA else 0
    return r * (matrix.inp + matrix.out) + magnitude, r * matrix.out


def adapted_matrices(shapes: ModelShapes, config: AdapterConfig, hot_k: int) -> list[tuple[int, str, Matrix, int]]:
    """(layer index, role, weight, copies) of every weight `config` adapts; an expert's gate, up and down come
    with `hot_k` copies for hellora, one per expert otherwise."""
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
        experts = hot_k if config.method is Method.HELLORA else layer.num_experts
        out += [(index, "experts", m, experts) for m in layer.expert]
    return out


def count_from_shapes(shapes: ModelShapes, config: AdapterConfig, hot_k: int) -> dict:
    """{"trainable", "total", "trainable_pct", "by_role", "adapter_total"}, as `count_parameters` of the model
    with `config`'s adapters attached would give."""
    base = shapes.size
    if config.method is Method.FFT:
        return counted({"base": base}, base, adapter_total=0)
    entries, b_entries = Counter(), Counter()
    for _, role, matrix, copies in adapted_matrices(shapes, config, hot_k):
        total, b = adapter_entries(matrix, config)
        entries[role] += copies * total
        b_entries[role] += copies * b
    if config.variant is Variant.LORI_D:
        by_role = b_entries
    elif config.variant is Variant.LORI_S:
        by_role = split_kept(lori_keep_count(sum(b_entries.values()), config.lori_density), b_entries)
    else:
        by_role = entries
    adapter_total = sum(entries.values())
    return counted(by_role, base + adapter_total, adapter_total)


def counted(by_role: Mapping[str, int], total: int, adapter_total: int) -> dict:
    """The count's record: {"trainable", "total", "trainable_pct", "by_role", "adapter_total"}."""
    trainable = sum(by_role.values())
    return {"trainable": trainable, "total": total, "trainable_pct": 100.0 * trainable / total if total else 0.0,
            "by_role": in_role_order(by_role), "adapter_total": adapter_total}
