"""Host memory of a bench setup: the bytes its model holds and the peak resident set size (RSS) of its steps.

Why both: a quantized setup's saving shows exactly in `resident_mib` (parameters + buffers, what the memory plan
predicts), while peak RSS adds what the steps allocate (activations, gradients, AdamW state, the per-expert
dequantized weights) and what the process already held. Linux lets a process reset its RSS high-water mark
(`VmHWM`) by writing 5 to /proc/self/clear_refs, so each setup's peak is its own even in one process; elsewhere
`peak_rss_mib` is None. In a run of several setups the earlier setups' allocations may stay in the allocator, and
a quantized setup still holds the full-precision expert parameters the next setup gets back: a setup's absolute
peak is measured alone (`--setups hellora@nf4`), ratios side by side.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

MIB = 2 ** 20
_STATUS = Path("/proc/self/status")
_CLEAR = Path("/proc/self/clear_refs")


def resident_mib(model: nn.Module) -> float:
    """MiB of the model's parameters and buffers (each tensor once)."""
    seen, total = set(), 0
    for t in [*model.parameters(), *model.buffers()]:
        if id(t) not in seen:
            seen.add(id(t))
            total += t.numel() * t.element_size()
    return round(total / MIB, 2)


def reset_peak_rss() -> bool:
    """Reset the process's RSS high-water mark (Linux); False where it cannot be reset."""
    try:
        _CLEAR.write_text("5")
        return True
    except OSError:
        return False


def peak_rss_mib() -> float | None:
    """The RSS high-water mark (VmHWM) in MiB since the last reset, or None off Linux."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) * 1024 / MIB, 1)
    except OSError:
        return None
    return None
