"""HELLoRI-D: LoRI-D on the hot experts only."""

from __future__ import annotations

from hellora.methods.hot_experts import HotExperts
from hellora.methods.lori_d import LoRID


class HELLoRID(HotExperts, LoRID):
    label = "HELLoRI-D"
