"""HELLoRI-S: LoRI-S on the hot experts of the HELLoRI-D adapter it starts from (it selects none of its own)."""

from __future__ import annotations

from hellora.methods.hot_experts import HotExperts
from hellora.methods.lori_s import LoRIS


class HELLoRIS(HotExperts, LoRIS):
    label = "HELLoRI-S"
