"""Choosing which experts get adapters: pure functions from activation counts to a placement.

A placement maps each MoE layer (its decoder-layer index) to a sorted list of expert ids. The strategies:

- `layer_topk`   the paper's HELLoRA: the k most-routed experts of each layer.
- `model_topk`   one global ranking (counts summed over layers), the same k experts in every layer.
- `cold`         the k least-routed experts of each layer (the paper's ablation).
- `random`       k experts per layer drawn with a seed (the paper's ablation, averaged over seeds).
- `coverage`     per layer, the smallest set of experts whose share of the layer's assignments reaches p.
- `entropy`      per layer, k_l proportional to the perplexity exp(H) of the layer's routing distribution,
                 scaled so the mean k over layers is the budget k: flat layers get more experts, peaked fewer.

Ties break deterministically towards the lower expert id.
"""

from __future__ import annotations

import math
import random as _random
from dataclasses import dataclass, field
from pathlib import Path

from hellora.utils.errors import HelloraError
from hellora.utils.io import atomic_write_json, read_json

STRATEGIES = ("layer", "model", "cold", "random", "coverage", "entropy", "all")


@dataclass
class HotExpertPlacement:
    """layer index -> sorted expert ids, with where it came from."""

    experts: dict[int, list[int]]
    num_experts: int
    strategy: str
    k: int | None = None
    model_id: str | None = None
    fingerprint: str | None = None
    source: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.experts = {int(l): sorted(int(e) for e in ids) for l, ids in self.experts.items()}
        for layer, ids in self.experts.items():
            bad = [e for e in ids if not 0 <= e < self.num_experts]
            if bad:
                raise HelloraError(f"placement layer {layer}: expert id {bad[0]} outside [0, {self.num_experts})")
            if len(set(ids)) != len(ids):
                raise HelloraError(f"placement layer {layer}: duplicate expert ids {ids}")

    def to_dict(self) -> dict:
        return {
            "format": "hellora.placement/1",
            "strategy": self.strategy,
            "k": self.k,
            "num_experts": self.num_experts,
            "model_id": self.model_id,
            "fingerprint": self.fingerprint,
            "source": self.source,
            "experts": {str(l): ids for l, ids in sorted(self.experts.items())},
        }

    def save(self, path: str | Path) -> Path:
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def from_dict(cls, data: dict, where: str = "placement") -> "HotExpertPlacement":
        if data.get("format") != "hellora.placement/1":
            raise HelloraError(f"{where}: not a hellora placement (format {data.get('format')!r})")
        try:
            experts = {int(l): ids for l, ids in data["experts"].items()}
        except (KeyError, ValueError, AttributeError) as e:
            raise HelloraError(f"{where}: field 'experts' must map layer index -> expert ids ({e})") from None
        return cls(experts=experts, num_experts=int(data["num_experts"]), strategy=data.get("strategy", "?"),
                   k=data.get("k"), model_id=data.get("model_id"), fingerprint=data.get("fingerprint"),
                   source=data.get("source") or {})

    @classmethod
    def load(cls, path: str | Path) -> "HotExpertPlacement":
        return cls.from_dict(read_json(path, "placement file"), where=f"placement file {path}")

    @property
    def total_experts(self) -> int:
        return sum(len(ids) for ids in self.experts.values())


def check_k(k: int, num_experts: int) -> None:
    if not isinstance(k, int) or not 1 <= k <= num_experts:
        raise HelloraError(f"k: number of hot experts must be an integer in [1, {num_experts}], got {k!r}")


def _rank(row: list[float], descending: bool = True) -> list[int]:
    """Expert ids ordered by count (descending or ascending), ties to the lower id."""
    sign = -1 if descending else 1
    return sorted(range(len(row)), key=lambda e: (sign * row[e], e))


def layer_topk(counts: dict[int, list[float]], k: int) -> dict[int, list[int]]:
    """HELLoRA: the k most-routed experts of each layer. counts: layer -> per-expert counts (E,)."""
    num_experts = len(next(iter(counts.values())))
    check_k(k, num_experts)
    return {layer: sorted(_rank(row)[:k]) for layer, row in counts.items()}


def model_topk(counts: dict[int, list[float]], k: int) -> dict[int, list[int]]:
    """One global top-k by counts summed over layers, applied to every layer."""
    num_experts = len(next(iter(counts.values())))
    check_k(k, num_experts)
    total = [sum(row[e] for row in counts.values()) for e in range(num_experts)]
    chosen = sorted(_rank(total)[:k])
    return {layer: list(chosen) for layer in counts}


def cold_topk(counts: dict[int, list[float]], k: int) -> dict[int, list[int]]:
    """The k least-routed experts of each layer."""
    num_experts = len(next(iter(counts.values())))
    check_k(k, num_experts)
    return {layer: sorted(_rank(row, descending=False)[:k]) for layer, row in counts.items()}


def random_experts(layers: list[int], num_experts: int, k: int, seed: int) -> dict[int, list[int]]:
    """k experts per layer drawn uniformly without replacement; same seed, same draw on every platform."""
    check_k(k, num_experts)
    rng = _random.Random(seed)
    return {layer: sorted(rng.sample(range(num_experts), k)) for layer in sorted(layers)}


def coverage_experts(counts: dict[int, list[float]], p: float) -> dict[int, list[int]]:
    """Per layer, the smallest top set whose share of the layer's assignments is >= p."""
    if not 0 < p <= 1:
        raise HelloraError(f"coverage: p must be in (0, 1], got {p!r}")
    out = {}
    for layer, row in counts.items():
        total = sum(row)
        order = _rank(row)
        chosen, mass = [], 0.0
        for e in order:
            chosen.append(e)
            mass += row[e]
            if total == 0 or mass >= p * total - 1e-12:
                break
        out[layer] = sorted(chosen)
    return out


def entropy_experts(counts: dict[int, list[float]], k: int) -> dict[int, list[int]]:
    """Per-layer k_l proportional to exp(entropy) of the routing distribution, mean k_l ~= k, 1 <= k_l <= E."""
    num_experts = len(next(iter(counts.values())))
    check_k(k, num_experts)
    perplexity = {}
    for layer, row in counts.items():
        total = sum(row)
        probs = [c / total for c in row if c > 0] if total else []
        entropy = -sum(q * math.log(q) for q in probs)
        perplexity[layer] = math.exp(entropy) if probs else float(num_experts)
    mean = sum(perplexity.values()) / len(perplexity)
    out = {}
    for layer, row in counts.items():
        k_layer = min(num_experts, max(1, round(k * perplexity[layer] / mean)))
        out[layer] = sorted(_rank(row)[:k_layer])
    return out


def select_experts(
    counts: dict[int, list[float]], strategy: str = "layer", k: int | None = None, *, seed: int = 0,
    p: float = 0.5, num_experts: int | None = None,
) -> dict[int, list[int]]:
    """Dispatch by strategy name; `k` defaults to nothing here (callers pass the router's top-k)."""
    num_experts = num_experts or len(next(iter(counts.values())))
    if strategy == "all":
        return {layer: list(range(num_experts)) for layer in counts}
    if strategy == "coverage":
        return coverage_experts(counts, p)
    if k is None:
        raise HelloraError(f"k: strategy {strategy!r} needs the number of hot experts k")
    if strategy == "layer":
        return layer_topk(counts, k)
    if strategy == "model":
        return model_topk(counts, k)
    if strategy == "cold":
        return cold_topk(counts, k)
    if strategy == "random":
        return random_experts(list(counts), num_experts, k, seed)
    if strategy == "entropy":
        return entropy_experts(counts, k)
    raise HelloraError(f"selection.strategy: unknown strategy {strategy!r}; choose one of {', '.join(STRATEGIES)}")
