"""LoRI-D (variant "lori_d"): A frozen at its random init, only B trained; its adapter is where LoRI-S starts."""

from __future__ import annotations

from collections.abc import Mapping

from hellora.methods.base import AdapterSettings
from hellora.methods.lora import LoRA


class LoRID(LoRA):
    label = "LoRI-D"
    bench_setup = None
    freezes_a = True
    starts_lori_s = True

    def trainable_by_role(self, entries: Mapping[str, int], b_entries: Mapping[str, int],
                          config: AdapterSettings) -> Mapping[str, int]:
        return b_entries
