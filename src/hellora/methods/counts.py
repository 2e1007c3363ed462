"""LoRI-S's share arithmetic, without torch: how many B entries one global top-density mask keeps, and how that
count splits over adapter roles before the mask exists (the meta device, a preset's shapes)."""

from __future__ import annotations

import math
from collections.abc import Mapping


def lori_keep_count(num_entries: int, density: float) -> int:
    """Entries LoRI-S keeps out of `num_entries`: density * n rounded half up (at least 1 when n > 0)."""
    if num_entries <= 0:
        return 0
    return min(num_entries, max(1, math.floor(density * num_entries + 0.5)))


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
