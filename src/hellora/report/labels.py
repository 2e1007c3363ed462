"""Row labels of `hellora report`: the method's name as the paper writes it, plus what sets the run apart.

    HELLoRA                 hot-expert LoRA, layer-wise top-k selection after a 10% LoRA warm-up (the paper's)
    HELLoRA (random) k=4    another selection strategy / another number of experts per layer
    HELLoRA p=25%           the warm-up profiled 25% of the training data (profile.fraction) instead of 10%
    HELLoRA (forward profile)  routing counted by a forward pass of the base model instead of a warm-up
    LoRA [attention]        adapters on a subset of the modules (adapter.targets)
"""

from __future__ import annotations

from hellora.methods.registry import get_method
from hellora.choices import Method, Variant

LABEL_LEGEND = ("Labels: `(strategy)` names a selection strategy other than the paper's layer-wise top-k; `k=N` "
                "is the number of hot experts per layer when set; `p=X%` means the LoRA warm-up that profiled the "
                "experts saw X% of the training data (profile.fraction; the paper's default is 10%); "
                "`(mode profile)` a profiling mode other than the warm-up; `[targets]` the modules adapted when not "
                "all; `[status]` a run that did not finish cleanly.")


def method_label(adapter: dict, selection: dict, profile: dict | None = None) -> str:
    """A run's row label: its method object's (`AdapterMethod.label_for`), then its targets when not "all"."""
    method = Method.parse(adapter.get("method", "hellora"), "config.yaml: adapter.method")
    variant = Variant.parse(adapter.get("variant", "none"), "config.yaml: adapter.variant")
    rules = get_method(method, variant)
    label = rules.label_for(selection, profile)
    if not rules.uses_targets:
        return label
    targets = adapter.get("targets", adapter.get("placement", "all"))  # run folders may hold the old key
    if targets != "all":
        label += f" [{targets}]"
    return label
