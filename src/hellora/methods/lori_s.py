"""LoRI-S (variant "lori_s"): a finished LoRI-D adapter's A, frozen; B restarted from zero and trained only on the
top `lori_density` share of that adapter's |B| (one global mask)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hellora.methods.base import AdapterSettings
from hellora.methods.counts import lori_keep_count, split_kept
from hellora.methods.lora import LoRA


class LoRIS(LoRA):
    label = "LoRI-S"
    bench_setup = None
    freezes_a = True
    masks_b = True
    continues_from_lori_d = True

    def trainable_by_role(self, entries: Mapping[str, int], b_entries: Mapping[str, int],
                          config: AdapterSettings) -> Mapping[str, int]:
        """The kept count is exact; its split over roles is proportional (the mask does not exist yet)."""
        return split_kept(lori_keep_count(sum(b_entries.values()), config.lori_density), b_entries)

    def report_fields(self, config: AdapterSettings) -> dict[str, Any]:
        return {"lori_density": config.lori_density}
