"""The one place profiling talks across processes: counts, routing mass and token totals summed over processes,
and the stop-when-stable check fed with those sums (so every process stops at the same batch).

Every process counts its own batches (forward mode: batches dealt round-robin; warm-up: its share of each
optimizer step's micro-batches); `reduce_counts` sums them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

import torch

from hellora.profiling.counter import ExpertActivationCounter
from hellora.profiling.stable import StabilityTracker

if TYPE_CHECKING:
    from accelerate import Accelerator


def reduce_counts(accelerator: Accelerator | None, counts: torch.Tensor, mass: torch.Tensor,
                  tokens: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """(counts int64, mass float64, tokens int64) summed over processes, on the CPU."""
    if accelerator is None or accelerator.num_processes == 1:
        return counts.clone(), mass.clone(), tokens.clone()
    device = accelerator.device
    return tuple(accelerator.reduce(t.to(device), reduction="sum").cpu().to(t.dtype) for t in (counts, mass, tokens))


def counts_stop(tracker: StabilityTracker,
                accelerator: Accelerator | None) -> Callable[[ExpertActivationCounter], bool]:
    """should_stop(counter) for a counting pass: the summed counts so far, fed to `tracker`."""
    def should_stop(counter: ExpertActivationCounter) -> bool:
        counts, _, _ = reduce_counts(accelerator, counter.counts, counter.mass, counter.tokens)
        return tracker.update(counts)

    return should_stop
