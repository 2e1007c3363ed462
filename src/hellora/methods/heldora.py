"""HELDoRA: DoRA on the hot experts only (the hot-expert filter applied to another PEFT method, as the paper
suggests). Each hot expert's gate, up and down get DoRA's magnitude and direction (`ExpertDoRAWeights`); cold
experts keep their base weights; attention and router follow `targets` as for DoRA."""

from __future__ import annotations

from hellora.methods.dora import DoRA
from hellora.methods.hot_experts import HotExperts


class HELDoRA(HotExperts, DoRA):
    label = "HELDoRA"
