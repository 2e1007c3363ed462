"""The retention-aware arm's placement: the experts most specific to the target on this base.

Per layer, each expert's share of the target's routing minus its share of the other skills' routing (the
reference, summed over the pretraining skills on the same base); the k largest are hot. Experts the target shares
with everything else rank low, so adapting them should disturb the other skills less at the same target accuracy.

The selector itself belongs to `hellora.placement` (a `Strategy` member usable by every command); this module is
the study's one call site, so the arm follows that selector when it lands.
"""

from __future__ import annotations

from hellora.placement import HotExpertPlacement
from hellora.profiling import ExpertProfile
from hellora.vocab import Strategy


def _shares(row: list[float]) -> list[float]:
    total = float(sum(row))
    return [c / total if total else 0.0 for c in row]


def specificity_topk(counts: dict[int, list[float]], reference: dict[int, list[float]], k: int
                     ) -> dict[int, list[int]]:
    """layer -> the k experts with the largest (target share - reference share); ties: the lower id. (L, E) in."""
    out = {}
    for layer, row in counts.items():
        score = [t - r for t, r in zip(_shares(row), _shares(reference[layer]))]
        out[layer] = sorted(sorted(range(len(row)), key=lambda e: (-score[e], e))[:k])
    return out


def retention_placement(profile: ExpertProfile, reference_counts: list[list[float]], k: int, *, seed: int = 0
                        ) -> HotExpertPlacement:
    """Hot experts of the retention-aware rule; `reference_counts` is (L, E) in the profile's layer order."""
    reference = dict(zip(profile.layers, reference_counts))
    strategy = getattr(Strategy, "SPECIFIC", None)
    if strategy is not None:
        from hellora.placement import select_experts

        experts = select_experts(profile.counts_by_layer(), strategy, k, seed=seed, num_experts=profile.num_experts,
                                 reference=reference)
    else:
        strategy = Strategy.MANUAL
        experts = specificity_topk(profile.counts_by_layer(), reference, k)
    return HotExpertPlacement(experts=experts, num_experts=profile.num_experts, strategy=strategy, k=k,
                              model_id=profile.model_id, fingerprint=profile.fingerprint,
                              source={"profile_mode": profile.mode, **profile.source, "rule": "target-specific"})
