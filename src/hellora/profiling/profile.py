"""`ExpertProfile`: a saved record of how often each expert of each MoE layer was routed to.

JSON, one file: counts [L, E] (top-k assignments of real tokens), gate-weighted mass [L, E], token totals,
the model id and architecture fingerprint, the data source, fraction and seed, and how it was measured
(`forward` passes or a LoRA `warmup`). Profiles compare by the Jaccard overlap and coverage of their hot sets,
which is how the paper judges how much data the warm-up needs (Table 10).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import AbstractSet

from hellora.placement import HotExpertPlacement, needs_k, select_experts
from hellora.utils.errors import HelloraError
from hellora.utils.io import atomic_write_json, read_json
from hellora.utils.records import integer, integer_list, mapping, number_rows, optional_text
from hellora.choices import Strategy, resolve_hot_k

log = logging.getLogger(__name__)

MIN_PROFILE_TOKENS = 1000  # fewer routed tokens per layer than this give a noisy hot set (a warning, not an error)

FORMAT = "hellora.profile/1"


@dataclass
class ExpertProfile:
    layers: list[int]                # decoder-layer index of each counted MoE layer
    counts: list[list[int]]          # (L, E) top-k assignments of real tokens
    mass: list[list[float]]          # (L, E) summed routing weights of those assignments
    tokens: list[int]                # (L,) real tokens seen per layer
    num_experts: int
    top_k: int
    model_id: str | None = None
    fingerprint: str | None = None
    mode: str = "forward"            # forward | warmup
    source: dict = field(default_factory=dict)  # data: path/id, task, fraction, seed, examples
    meta: dict = field(default_factory=dict)    # versions, device, wall time

    def __post_init__(self) -> None:
        if len(self.counts) != len(self.layers) or any(len(r) != self.num_experts for r in self.counts):
            raise HelloraError(f"profile: counts must be [{len(self.layers)} layers x {self.num_experts} experts]")

    def counts_by_layer(self) -> dict[int, list[int]]:
        return dict(zip(self.layers, self.counts))

    def shares_by_layer(self) -> dict[int, list[float]]:
        """Per-layer share of assignments (each row sums to 1, or all zero when a layer saw nothing)."""
        out = {}
        for layer, row in self.counts_by_layer().items():
            total = sum(row)
            out[layer] = [c / total if total else 0.0 for c in row]
        return out

    def top_k_share(self, k: int | None = None) -> dict[int, float]:
        """Share of each layer's assignments held by its k most-used experts (the paper's skew measure)."""
        k = resolve_hot_k(k, self.top_k)
        return {l: sum(sorted(row, reverse=True)[:k]) for l, row in self.shares_by_layer().items()}

    def select(self, strategy: str = "layer", k: int | None = None, *, seed: int = 0, p: float = 0.5,
               reference: ExpertProfile | None = None) -> HotExpertPlacement:
        """Hot experts from this profile; k defaults to the router's top-k. `reference` is the profile of the data
        whose skills should be kept, read by strategy retention (checked to describe the same model). Warns when
        the profile is small."""
        if needs_k(strategy):
            k = resolve_hot_k(k, self.top_k)
        if reference is not None:
            check_reference_profile(self, reference)
        experts = select_experts(self.counts_by_layer(), strategy, k, seed=seed, p=p, num_experts=self.num_experts,
                                 reference=reference.counts_by_layer() if reference is not None else None)
        few = self.few_tokens_warning()  # after the inputs were accepted: a refusal stays one line
        if few:
            log.warning(few)
        extra: dict = {"p": p} if strategy == Strategy.COVERAGE else {}
        if reference is not None:
            extra["reference"] = {"mode": reference.mode, **reference.source}
        return HotExpertPlacement(
            experts=experts, num_experts=self.num_experts, strategy=Strategy.parse(strategy, "placement.strategy"),
            k=k, model_id=self.model_id,
            fingerprint=self.fingerprint,
            source={"profile_mode": self.mode, **self.source, "seed": seed, **extra},
        )

    def few_tokens_warning(self) -> str | None:
        """A warning when the profile routed fewer than `MIN_PROFILE_TOKENS` tokens per layer, else None."""
        if not self.tokens:  # a profile that does not record its token totals: nothing to judge by
            return None
        seen = min(self.tokens)
        if seen >= MIN_PROFILE_TOKENS:
            return None
        return (f"the profile covers only {seen} tokens per layer (fewer than ~{MIN_PROFILE_TOKENS:,}): its hot "
                f"experts are a noisy estimate; profile more data (a larger profile.fraction)")

    def to_dict(self) -> dict:
        return {"format": FORMAT, "model_id": self.model_id, "fingerprint": self.fingerprint, "mode": self.mode,
                "num_experts": self.num_experts, "top_k": self.top_k, "layers": self.layers, "tokens": self.tokens,
                "counts": self.counts, "mass": self.mass, "source": self.source, "meta": self.meta}

    def save(self, path: str | Path) -> Path:
        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "ExpertProfile":
        """A saved profile, every field checked as untrusted input before use (`check_profile_record`)."""
        where = f"profile file {path}"
        return cls.from_dict(check_profile_record(read_json(path, "profile file"), where))

    @classmethod
    def from_dict(cls, data: dict) -> "ExpertProfile":
        """A profile from `to_dict()`'s form (checked by `load` when it comes from a file)."""
        return cls(layers=data["layers"], counts=data["counts"], mass=data.get("mass") or [],
                   tokens=data.get("tokens") or [], num_experts=data["num_experts"], top_k=data["top_k"],
                   model_id=data.get("model_id"), fingerprint=data.get("fingerprint"), mode=data.get("mode", "forward"),
                   source=data.get("source") or {}, meta=data.get("meta") or {})

    def check_fits(self, moe_layers: list[int], num_experts: int, fingerprint: str | None, where: str) -> None:
        """Refuse (one line) a profile of another model: another fingerprint, expert count or set of MoE layers."""
        if self.fingerprint and fingerprint and self.fingerprint != fingerprint:
            raise HelloraError(f"{where} was measured on another model ({self.model_id!r}, fingerprint "
                               f"{self.fingerprint}); this model has fingerprint {fingerprint}")
        if self.num_experts != num_experts:
            raise HelloraError(f"{where}: num_experts {self.num_experts}, but the model's MoE layers have "
                               f"{num_experts} experts")
        if sorted(self.layers) != sorted(moe_layers):
            unknown = sorted(set(self.layers) - set(moe_layers))
            what = f"layer {unknown[0]} is not an MoE layer of this model" if unknown else "it misses MoE layers"
            raise HelloraError(f"{where}: {what} (the model's MoE layers: {moe_layers}; the profile's: {self.layers})")


def check_profile_record(data: object, where: str) -> dict:
    """The JSON form of a profile, checked field by field (one `HelloraError` line naming the field): known
    format; layers distinct integers >= 0; num_experts >= 1 and 1 <= top_k <= num_experts; counts and mass
    (L, E) finite numbers >= 0 (a NaN count would rank its expert hottest); token totals integers >= 0."""
    data = mapping(data, where)
    if data.get("format") != FORMAT:
        raise HelloraError(f"{where}: not a hellora profile (expected format {FORMAT!r})")
    missing = [k for k in ("layers", "counts", "num_experts", "top_k") if k not in data]
    if missing:
        raise HelloraError(f"{where}: missing field {missing[0]!r}")
    layers = integer_list(data["layers"], f"{where}: field 'layers'", low=0)
    if len(set(layers)) != len(layers):
        raise HelloraError(f"{where}: field 'layers' lists a layer twice ({layers})")
    num_experts = integer(data["num_experts"], f"{where}: field 'num_experts'", low=1)
    integer(data["top_k"], f"{where}: field 'top_k'", low=1, below=num_experts + 1)
    shape = dict(n_rows=len(layers), n_cols=num_experts)
    number_rows(data["counts"], f"{where}: field 'counts'", **shape)
    if data.get("mass"):
        number_rows(data["mass"], f"{where}: field 'mass'", **shape)
    tokens = data.get("tokens")
    if tokens:
        if not isinstance(tokens, list) or len(tokens) != len(layers):
            raise HelloraError(f"{where}: field 'tokens' must list one token total per layer ({len(layers)})")
        integer_list(tokens, f"{where}: field 'tokens'", low=0)
    mode = data.get("mode", "forward")
    if mode not in ("forward", "warmup"):
        raise HelloraError(f"{where}: field 'mode' must be forward or warmup, got {mode!r}")
    for key in ("model_id", "fingerprint"):
        optional_text(data.get(key), f"{where}: field {key!r}")
    for key in ("source", "meta"):
        mapping(data.get(key), f"{where}: field {key!r}", optional=True)
    return data


def check_reference_profile(target: ExpertProfile, reference: ExpertProfile, where: str = "reference profile") -> None:
    """One error unless `reference` counts the same model as `target`: same MoE layers, expert count, and (where
    both record them) model id and architecture fingerprint."""
    if reference.layers != target.layers or reference.num_experts != target.num_experts:
        raise HelloraError(f"{where}: {len(reference.layers)} MoE layers {reference.layers} x {reference.num_experts} "
                           f"experts, but the target profile has {target.layers} x {target.num_experts}; profile "
                           f"both on the same model")
    for name in ("model_id", "fingerprint"):
        mine, theirs = getattr(target, name), getattr(reference, name)
        if mine and theirs and mine != theirs:
            raise HelloraError(f"{where}: {name} {theirs!r} differs from the target profile's {mine!r}; profile both "
                               f"on the same model")


def jaccard(a: AbstractSet[int], b: AbstractSet[int]) -> float:
    """|A & B| / |A | B| of two hot sets (1.0 when both are empty)."""
    return len(a & b) / len(a | b) if a | b else 1.0


def _hot_sets(profile: ExpertProfile, k: int) -> dict[int, set[int]]:
    return {l: set(ids) for l, ids in profile.select("layer", k).experts.items()}


def compare_profiles(profile: ExpertProfile, reference: ExpertProfile, k: int | None = None) -> dict:
    """Agreement of `profile`'s layer-level hot sets with `reference`'s (e.g. 10% vs 100% of the data).

    Jaccard per layer |A & B| / |A | B|; coverage per layer |A & B| / |B| (share of the reference's hot experts
    that `profile` also finds). Returns per-layer values and their means.
    """
    if profile.layers != reference.layers or profile.num_experts != reference.num_experts:
        raise HelloraError("compare: the two profiles describe different MoE layers or expert counts")
    if profile.fingerprint and reference.fingerprint and profile.fingerprint != reference.fingerprint:
        raise HelloraError("compare: the two profiles come from different model architectures (fingerprints differ)")
    k = resolve_hot_k(k, profile.top_k)
    a, b = _hot_sets(profile, k), _hot_sets(reference, k)
    per_layer = {l: jaccard(a[l], b[l]) for l in a}
    coverage = {l: len(a[l] & b[l]) / len(b[l]) for l in a}
    return {
        "k": k,
        "jaccard": sum(per_layer.values()) / len(per_layer),
        "coverage": sum(coverage.values()) / len(coverage),
        "per_layer": {str(l): {"jaccard": per_layer[l], "coverage": coverage[l]} for l in a},
    }
