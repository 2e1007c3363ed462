"""HELLoRA: LoRA on the hot experts only (the paper's method)."""

from __future__ import annotations

from hellora.methods.hot_experts import HotExperts
from hellora.methods.lora import LoRA


class HELLoRA(HotExperts, LoRA):
    label = "HELLoRA"
    bench_setup = "hellora"
