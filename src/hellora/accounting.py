"""Parameter accounting: how many weights a method trains, as the paper's Params column reports it.

total = base parameters + all adapter parameters (PEFT's convention), trainable = adapter parameters.
`parameter_report` computes it from the config alone on the meta device: no weights are loaded, so the 47B
Mixtral counts in a second. The identity of hot experts does not change the count, so without a profile the
first k experts of each layer stand in.
"""

from __future__ import annotations

from collections import Counter

from torch import nn

from hellora.adapters.config import AdapterConfig
from hellora.adapters.inject import adapter_layers, attach_adapters
from hellora.models.families import describe_moe_model
from hellora.models.loading import meta_model
from hellora.placement import HotExpertPlacement, check_k


def count_parameters(model: nn.Module) -> dict:
    """{"trainable", "total", "trainable_pct", "by_role"} of a (possibly adapted) model."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    by_role: Counter = Counter()
    for layer in adapter_layers(model).values():
        by_role[layer.role] += sum(p.numel() for n, p in layer.named_parameters() if "lora_" in n)
    return {"trainable": trainable, "total": total, "trainable_pct": 100.0 * trainable / total if total else 0.0,
            "by_role": dict(by_role)}


def parameter_report(
    model: str, method: str = "hellora", *, k: int | None = None, r: int = 32, alpha: float = 64.0,
    placement: str = "all", router: bool | None = None, trust_remote_code: bool = False,
) -> dict:
    """Trainable / total parameters of `method` on `model` (preset, path or hub id), from its config only."""
    net = meta_model(model, trust_remote_code=trust_remote_code)
    spec = describe_moe_model(net)
    config = AdapterConfig(method=method, r=r, alpha=alpha, placement=placement, router=router)
    hot = None
    if method == "hellora":
        k = k if k is not None else spec.top_k
        stand_in = {layer: list(range(k)) for layer in spec.moe_layer_indices}
        check_k(k, spec.num_experts)
        hot = HotExpertPlacement(stand_in, spec.num_experts, "first-k", k=k)
    attach_adapters(net, config, hot, spec)
    report = count_parameters(net)
    report.update(model=model, method=method, k=k if method == "hellora" else spec.num_experts, r=r,
                  placement=placement, num_experts=spec.num_experts, top_k=spec.top_k,
                  moe_layers=len(spec.moe_layers))
    return report
