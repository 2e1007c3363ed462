"""The hot-expert filter: any expert-adapting method restricted to the placement's k hot experts per layer.

The paper's HELLoRA applies it to LoRA and LoRI; it is a mixin so that it applies to any method whose experts are
adapted one by one (`class HELDoRA(HotExperts, DoRA)`), and the label says how the experts were chosen.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hellora.methods.base import AdapterMethod
from hellora.choices import Strategy


class HotExperts(AdapterMethod):
    """Adapts the placement's hot experts only; labels add the selection's strategy, k, profile share and mode."""

    adapts_hot_experts = True

    def label_for(self, selection: Mapping[str, Any], profile: Mapping[str, Any] | None) -> str:
        label = self.label
        strategy = selection.get("strategy", "layer")
        if strategy != Strategy.LAYER:
            label += f" ({strategy})"
        if selection.get("k"):
            label += f" k={selection['k']}"
        fraction = (profile or {}).get("fraction", 0.1)
        if fraction != 0.1:
            label += f" p={100 * fraction:g}%"
        mode = (profile or {}).get("mode", "warmup")
        if mode != "warmup":  # the paper profiles with a LoRA warm-up; other modes are their own rows
            label += f" ({mode} profile)"
        return label
