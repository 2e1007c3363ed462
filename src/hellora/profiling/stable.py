"""Stop profiling when it is stable: once every layer's hot set has stopped changing.

The paper profiles a fixed share of the data (10%); the hot set of a skewed layer is often settled long before.
`StabilityTracker` is fed the running counts (L, E) after each batch (forward mode) or optimizer step (warm-up)
and says when to stop:

    hot_b[l]  = the k most-counted experts of layer l after batch b (ties: lower expert id)
    stable at b  <=>  b >= window and, for every layer l and every j in 1..window,
                      |hot_b[l] & hot_{b-j}[l]| / |hot_b[l] | hot_{b-j}[l]| >= jaccard

so with jaccard = 1.0 the hot sets were identical over the last `window` batches. The configured fraction stays
the upper bound. Every process must feed the same (summed) counts so that all stop at the same batch.
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

import torch

from hellora.placement import layer_topk
from hellora.profiling.profile import jaccard
from hellora.utils.errors import HelloraError
from hellora.choices import resolve_hot_k

if TYPE_CHECKING:
    from hellora.config import RunConfig


def hot_sets(counts: torch.Tensor, k: int) -> list[frozenset[int]]:
    """Per layer, the k most-counted experts of counts (L, E): HELLoRA's layer-level choice (`layer_topk`)."""
    return [frozenset(ids) for ids in layer_topk(dict(enumerate(counts.tolist())), k).values()]


class StabilityTracker:
    """Feed counts after each batch; `update` returns True once every layer's hot set is stable (module doc)."""

    def __init__(self, k: int, window: int, threshold: float) -> None:
        if window < 1:
            raise HelloraError(f"profile.stable_window: must be at least 1 batch (got {window})")
        if not 0.0 < threshold <= 1.0:
            raise HelloraError(f"profile.stable_jaccard: must be in (0, 1] (got {threshold})")
        if k < 1:
            raise HelloraError(f"selection.k: must be at least 1 to track hot sets (got {k})")
        self.k, self.window, self.threshold = k, window, threshold
        self.history: deque = deque(maxlen=window)
        self.batches = 0
        self.stable_at: int | None = None

    def update(self, counts: torch.Tensor) -> bool:
        """counts (L, E) accumulated so far (all processes); True when profiling may stop."""
        self.batches += 1
        if bool((counts.sum(dim=1) == 0).any()):  # a layer that has seen nothing has no hot set yet
            self.history.clear()
            return False
        current = hot_sets(counts, self.k)
        stable = len(self.history) == self.window and all(
            jaccard(now, then) >= self.threshold for past in self.history for now, then in zip(current, past))
        self.history.append(current)
        if stable and self.stable_at is None:
            self.stable_at = self.batches
        return stable

    def record(self, planned: int, fraction: float, wall_s: float) -> dict:
        """What profile.json keeps: batches used of those planned, the data fraction used, the wall time."""
        used = self.stable_at or self.batches
        return {"window": self.window, "jaccard": self.threshold, "k": self.k,
                "stopped_early": self.stable_at is not None, "batches_used": used, "batches_planned": planned,
                "fraction_used": round(fraction * used / planned, 6) if planned else 0.0,
                "wall_time_s": round(wall_s, 3)}


def stability_tracker(config: RunConfig, top_k: int) -> StabilityTracker | None:
    """The stop-when-stable tracker profile.until_stable asks for (k: selection.k, else the router's top-k)."""
    p = config.profile
    if not p.until_stable:
        return None
    return StabilityTracker(resolve_hot_k(config.selection.k, top_k), p.stable_window, p.stable_jaccard)
