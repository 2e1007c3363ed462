"""Choosing which experts get adapters: pure functions from activation counts to a placement.

A placement maps each MoE layer (its decoder-layer index) to a sorted list of expert ids. The strategies:

- `layer_topk`   the paper's HELLoRA: the k most-routed experts of each layer.
- `model_topk`   one global ranking (counts summed over layers), the same k experts in every layer.
- `cold`         the k least-routed experts of each layer (the paper's ablation).
- `random`       k experts per layer drawn with a seed (the paper's ablation, averaged over seeds).
- `coverage`     per layer, the smallest set of experts whose share of the layer's assignments reaches p.
- `entropy`      per layer, k_l proportional to the perplexity exp(H) of the layer's routing distribution,
                 scaled so the mean k over layers is the budget k: flat layers get more experts, peaked fewer.
- `cold-entropy` `entropy`'s per-layer budgets k_l filled with each layer's least-routed experts: the cold
                 control of `entropy` (same adapter parameters per layer, the experts the task uses least).
- `retention`    per layer, the k experts most specific to the target: the target's routing share minus a
                 reference profile's (the routing of the other data whose skills should be kept), so experts the
                 target shares with the other skills rank below experts only the target uses.
- `all`          every expert (plain LoRA's coverage).
- `first-k`      experts 0..k-1 of every layer, no profile needed: a stand-in where only the count matters.
- `manual`       a placement written by hand (this class or a placement file); no function selects it.

Ties break deterministically towards the lower expert id. Adding a strategy: a member of
`hellora.choices.Strategy`, its function here, and its row in `SELECTORS` (and in `NEEDS_REFERENCE` when it reads a
second, reference profile).
"""

from __future__ import annotations

import math
import random as _random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

from hellora.utils.errors import HelloraError
from hellora.utils.io import atomic_write_json, read_json
from hellora.utils.records import integer, integer_list, layer_key, mapping, optional_text
from hellora.choices import Strategy

PLACEMENT_FORMAT = "hellora.placement/1"


# Names that hand-made or inherited placements carry in existing placement and adapter files: read as MANUAL.
MANUAL_ALIASES = ("?", "saved", "lori_d", "bench")


def saved_strategy(value: str | None) -> Strategy:
    """The strategy a placement or adapter file records (MANUAL when it records none or a hand-made alias)."""
    if value is None or value in MANUAL_ALIASES:
        return Strategy.MANUAL
    return Strategy.parse(value, "placement.strategy")


@dataclass
class HotExpertPlacement:
    """layer index -> sorted expert ids, with where it came from."""

    experts: dict[int, list[int]]
    num_experts: int
    strategy: Strategy
    k: int | None = None
    model_id: str | None = None
    fingerprint: str | None = None
    source: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.strategy = Strategy.parse(self.strategy, "placement.strategy")
        self.experts = {int(l): sorted(int(e) for e in ids) for l, ids in self.experts.items()}
        for layer, ids in self.experts.items():
            bad = [e for e in ids if not 0 <= e < self.num_experts]
            if bad:
                raise HelloraError(f"placement layer {layer}: expert id {bad[0]} outside [0, {self.num_experts})")
            if len(set(ids)) != len(ids):
                raise HelloraError(f"placement layer {layer}: duplicate expert ids {ids}")

    def to_dict(self) -> dict:
        return {
            "format": PLACEMENT_FORMAT,
            "strategy": self.strategy.value,
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
        """A placement from its JSON form, every field checked as untrusted input (one line naming the field):
        integer expert ids (not 2.5, not true) in [0, num_experts), layer keys that are whole numbers."""
        data = mapping(data, where)
        if data.get("format") != PLACEMENT_FORMAT:
            raise HelloraError(f"{where}: not a hellora placement (format {data.get('format')!r})")
        if "experts" not in data or "num_experts" not in data:
            raise HelloraError(f"{where}: missing field {'experts' if 'experts' not in data else 'num_experts'!r}")
        num_experts = integer(data["num_experts"], f"{where}: field 'num_experts'", low=1)
        experts = {}
        for key, ids in mapping(data["experts"], f"{where}: field 'experts'").items():
            layer = layer_key(key, f"{where}: field 'experts'")
            experts[layer] = integer_list(ids, f"{where}: experts of layer {layer}", low=0, below=num_experts)
        k = integer(data.get("k"), f"{where}: field 'k'", low=1, optional=True)
        strategy = data.get("strategy")
        if strategy is not None and not isinstance(strategy, str):
            raise HelloraError(f"{where}: field 'strategy' must be text, got {strategy!r}")
        return cls(experts=experts, num_experts=num_experts, strategy=saved_strategy(strategy), k=k,
                   model_id=optional_text(data.get("model_id"), f"{where}: field 'model_id'"),
                   fingerprint=optional_text(data.get("fingerprint"), f"{where}: field 'fingerprint'"),
                   source=mapping(data.get("source"), f"{where}: field 'source'", optional=True))

    @classmethod
    def load(cls, path: str | Path) -> "HotExpertPlacement":
        return cls.from_dict(read_json(path, "placement file"), where=f"placement file {path}")

    def check_fits(self, moe_layers: list[int], num_experts: int, fingerprint: str | None, where: str) -> None:
        """Refuse (one line) a placement for another model: another architecture fingerprint, another expert
        count, or a layer that is not one of the model's MoE layers (`moe_layers`, decoder-layer indices)."""
        if self.fingerprint and fingerprint and self.fingerprint != fingerprint:
            raise HelloraError(f"{where} was made for another model ({self.model_id!r}, fingerprint "
                               f"{self.fingerprint}); this model has fingerprint {fingerprint}")
        if self.num_experts != num_experts:
            raise HelloraError(f"{where}: num_experts {self.num_experts}, but the model's MoE layers have "
                               f"{num_experts} experts")
        unknown = sorted(set(self.experts) - set(moe_layers))
        if unknown:
            raise HelloraError(f"{where}: layer {unknown[0]} is not an MoE layer of this model (its MoE layers: "
                               f"{moe_layers})")

    @property
    def total_experts(self) -> int:
        return sum(len(ids) for ids in self.experts.values())


def check_k(k: int, num_experts: int) -> None:
    if not isinstance(k, int) or not 1 <= k <= num_experts:
        raise HelloraError(f"k: number of hot experts must be an integer in [1, {num_experts}], got {k!r}")


def _rank(row: Sequence[float], descending: bool = True) -> list[int]:
    """Expert ids ordered by count (descending or ascending), ties to the lower id."""
    sign = -1 if descending else 1
    return sorted(range(len(row)), key=lambda e: (sign * row[e], e))


def layer_topk(counts: Counts, k: int) -> dict[int, list[int]]:
    """HELLoRA: the k most-routed experts of each layer. counts: layer -> per-expert counts (E,)."""
    num_experts = len(next(iter(counts.values())))
    check_k(k, num_experts)
    return {layer: sorted(_rank(row)[:k]) for layer, row in counts.items()}


def model_topk(counts: Counts, k: int) -> dict[int, list[int]]:
    """One global top-k by counts summed over layers, applied to every layer."""
    num_experts = len(next(iter(counts.values())))
    check_k(k, num_experts)
    total = [sum(row[e] for row in counts.values()) for e in range(num_experts)]
    chosen = sorted(_rank(total)[:k])
    return {layer: list(chosen) for layer in counts}


def cold_topk(counts: Counts, k: int) -> dict[int, list[int]]:
    """The k least-routed experts of each layer."""
    num_experts = len(next(iter(counts.values())))
    check_k(k, num_experts)
    return {layer: sorted(_rank(row, descending=False)[:k]) for layer, row in counts.items()}


def random_experts(layers: list[int], num_experts: int, k: int, seed: int) -> dict[int, list[int]]:
    """k experts per layer drawn uniformly without replacement; same seed, same draw on every platform."""
    check_k(k, num_experts)
    rng = _random.Random(seed)
    return {layer: sorted(rng.sample(range(num_experts), k)) for layer in sorted(layers)}


def coverage_experts(counts: Counts, p: float) -> dict[int, list[int]]:
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


def _entropy_budgets(counts: Counts, k: int) -> dict[int, int]:
    """Per-layer k_l proportional to exp(entropy) of the layer's routing distribution, mean k_l ~= k, 1 <= k_l <= E."""
    num_experts = len(next(iter(counts.values())))
    check_k(k, num_experts)
    perplexity = {}
    for layer, row in counts.items():
        total = sum(row)
        probs = [c / total for c in row if c > 0] if total else []
        entropy = -sum(q * math.log(q) for q in probs)
        perplexity[layer] = math.exp(entropy) if probs else float(num_experts)
    mean = sum(perplexity.values()) / len(perplexity)
    return {layer: min(num_experts, max(1, round(k * perplexity[layer] / mean))) for layer in counts}


def entropy_experts(counts: Counts, k: int) -> dict[int, list[int]]:
    """Per layer, its entropy budget k_l (`_entropy_budgets`) of most-routed experts."""
    budgets = _entropy_budgets(counts, k)
    return {layer: sorted(_rank(row)[:budgets[layer]]) for layer, row in counts.items()}


def cold_entropy_experts(counts: Counts, k: int) -> dict[int, list[int]]:
    """Per layer, its entropy budget k_l of least-routed experts: `entropy`'s sizes, `cold`'s choice."""
    budgets = _entropy_budgets(counts, k)
    return {layer: sorted(_rank(row, descending=False)[:budgets[layer]]) for layer, row in counts.items()}


def _exact_shares(row: Sequence[float]) -> list[Fraction]:
    """A layer's counts as exact shares of its assignments (all zero when the layer saw nothing): exact, so two
    experts whose scores are equal tie, and the tie-break decides, not float rounding."""
    if any(isinstance(c, bool) or not isinstance(c, (int, float)) or not math.isfinite(c) or c < 0 for c in row):
        raise HelloraError(f"routing counts must be finite numbers >= 0, got {list(row)}")
    exact = [Fraction(c) for c in row]
    total = sum(exact)
    return [c / total if total else Fraction(0) for c in exact]


def retention_topk(counts: Counts, reference: Counts, k: int) -> dict[int, list[int]]:
    """Per layer, the k experts most specific to the target: score = target share - reference share.

    counts: layer -> the target's per-expert counts (E,); reference: layer -> the counts of the data whose skills
    should be kept (same layers, same E). Shares are counts / the layer's row sum, so a larger reference sample
    does not outweigh the target. Ties break towards the higher target count, then the lower expert id.
    """
    num_experts = len(next(iter(counts.values())))
    check_k(k, num_experts)
    if set(reference) != set(counts):
        raise HelloraError(f"reference profile: MoE layers {sorted(reference)} differ from the target's "
                           f"{sorted(counts)}")
    out = {}
    for layer, row in counts.items():
        if len(reference[layer]) != len(row):
            raise HelloraError(f"reference profile: layer {layer} has {len(reference[layer])} experts, the "
                               f"target's has {len(row)}")
        target, kept = _exact_shares(row), _exact_shares(reference[layer])
        ranked = sorted(range(len(row)), key=lambda e: (-(target[e] - kept[e]), -row[e], e))
        out[layer] = sorted(ranked[:k])
    return out


def first_k_experts(layers: list[int], num_experts: int, k: int) -> dict[int, list[int]]:
    """Experts 0..k-1 of every layer."""
    check_k(k, num_experts)
    return {layer: list(range(k)) for layer in layers}


def first_k_placement(layers: list[int], num_experts: int, k: int) -> "HotExpertPlacement":
    """Experts 0..k-1 of every layer as a placement: the stand-in where only how many experts are hot matters
    (parameter and FLOP accounting without a profile)."""
    return HotExpertPlacement(first_k_experts(layers, num_experts, k), num_experts, Strategy.FIRST_K, k=k)


def all_experts(layers: list[int], num_experts: int) -> dict[int, list[int]]:
    return {layer: list(range(num_experts)) for layer in layers}


Counts = Mapping[int, Sequence[float]]  # layer -> per-expert routing counts (or shares)
# (counts, k, seed, p, num_experts, reference counts): k is read only by the strategies that need it
Selector = Callable[[Counts, int, int, float, int, "Counts | None"], dict[int, list[int]]]

# Strategy -> (needs k, selector(counts, k, seed, p, num_experts, reference counts)). MANUAL has no row: nothing
# selects it.
SELECTORS: dict[Strategy, tuple[bool, Selector]] = {
    Strategy.LAYER: (True, lambda counts, k, seed, p, n, ref: layer_topk(counts, k)),
    Strategy.MODEL: (True, lambda counts, k, seed, p, n, ref: model_topk(counts, k)),
    Strategy.COLD: (True, lambda counts, k, seed, p, n, ref: cold_topk(counts, k)),
    Strategy.RANDOM: (True, lambda counts, k, seed, p, n, ref: random_experts(list(counts), n, k, seed)),
    Strategy.COVERAGE: (False, lambda counts, k, seed, p, n, ref: coverage_experts(counts, p)),
    Strategy.ENTROPY: (True, lambda counts, k, seed, p, n, ref: entropy_experts(counts, k)),
    Strategy.COLD_ENTROPY: (True, lambda counts, k, seed, p, n, ref: cold_entropy_experts(counts, k)),
    Strategy.RETENTION: (True, lambda counts, k, seed, p, n, ref: retention_topk(counts, ref or {}, k)),
    Strategy.ALL: (False, lambda counts, k, seed, p, n, ref: all_experts(list(counts), n)),
    Strategy.FIRST_K: (True, lambda counts, k, seed, p, n, ref: first_k_experts(list(counts), n, k)),
}
STRATEGIES = tuple(strategy.value for strategy in SELECTORS)
# Strategies that rank the target's routing against a reference profile's (selection.reference, --reference).
NEEDS_REFERENCE = frozenset({Strategy.RETENTION})


def needs_k(strategy: Strategy | str) -> bool:
    """Whether `strategy` takes the number of hot experts k (callers default it with `choices.resolve_hot_k`)."""
    strategy = Strategy.parse(strategy, "selection.strategy")
    return strategy in SELECTORS and SELECTORS[strategy][0]


def needs_reference(strategy: Strategy | str) -> bool:
    """Whether `strategy` reads a second, reference profile (the routing of data whose skills should be kept)."""
    return Strategy.parse(strategy, "selection.strategy") in NEEDS_REFERENCE


def select_experts(
    counts: Counts, strategy: Strategy | str = Strategy.LAYER, k: int | None = None, *, seed: int = 0,
    p: float = 0.5, num_experts: int | None = None, reference: Counts | None = None,
) -> dict[int, list[int]]:
    """Dispatch by strategy (`SELECTORS`); `k` defaults to nothing here (callers pass `resolve_hot_k`'s).

    `reference` (layer -> counts) is read by the strategies in NEEDS_REFERENCE, and refused by the others.
    """
    strategy = Strategy.parse(strategy, "selection.strategy")
    if strategy not in SELECTORS:
        raise HelloraError(f"selection.strategy: {strategy.value!r} marks a placement written by hand; choose one of "
                           f"{', '.join(STRATEGIES)}")
    num_experts = num_experts or len(next(iter(counts.values())))
    wants_k, select = SELECTORS[strategy]
    if wants_k and k is None:
        raise HelloraError(f"k: strategy {strategy!r} needs the number of hot experts k")
    if strategy in NEEDS_REFERENCE and reference is None:
        raise HelloraError(f"selection.reference: strategy {strategy!r} needs a reference profile (the routing of the "
                           f"data whose skills should be kept)")
    if strategy not in NEEDS_REFERENCE and reference is not None:
        raise HelloraError(f"selection.reference: only strategy {', '.join(sorted(NEEDS_REFERENCE))} reads a reference "
                           f"profile, not {strategy!r}")
    return select(counts, 0 if k is None else k, seed, p, num_experts, reference)  # no k: a strategy without one
