"""Parameter accounting: how many weights a method trains, as the paper's Params column reports it.

    trainable_pct = 100 * trainable / total,   total = base parameters + ALL adapter parameters

The denominator includes every adapter entry, trained or not (PEFT's `print_trainable_parameters` convention):
LoRI's frozen A and LoRI-S's masked-out B entries count in `total` but not in `trainable`. The paper's cells fix
this by arithmetic: DeepSeekMoE LoRI-D 1.671% is 283,701,248 B entries / (16,375,728,128 base + 601,843,712
LoRA A+B) = 1.6710%, whereas the base alone would give 1.732% and base + B only 1.704%; Mixtral LoRI-D (0.5911%
vs 0.597% / 0.594%) and HELLoRI-D on OLMoE (0.3015% vs 0.3036%) agree. Trainable, per method:

    lora / hellora            every LoRA A and B entry
    DoRA (variant "dora")     + one magnitude entry per output row of every adapted matrix (attention, router,
                              each adapted expert's gate, up and down)
    LoRI-D                    B entries only
    LoRI-S                    lori_keep_count(all B entries, density): one global top-density mask
    loramoe                   N LoRA pairs + the (N, in) router of every Linear of every expert FFN
    fft                       every base parameter (trainable = total, 100%)

`parameter_report(model, count_request(method, ...))` computes it without weights. For a preset it is arithmetic
on the config values (`shape_count.py` on `hellora.models.shapes`: no torch, so `hellora params` answers in a
blink); for a folder or hub id, and as the reference the tests hold the arithmetic to, `meta_parameter_report`
attaches the adapters to the model built on the meta device (the 47B Mixtral counts in a few seconds). The identity of hot experts does not change
the count, so without a profile the first k experts of each layer stand in (strategy "first-k"). On the meta device
a LoRI-S mask does not exist yet; its size is exact (the global count), its split over roles in `by_role` is
proportional.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from hellora.adapters.config import AdapterConfig
from hellora.adapters.shape_count import count_from_shapes, counted, lori_keep_count, split_kept
from hellora.models.presets import PRESETS, default_hot_k
from hellora.models.shapes import model_shapes
from hellora.methods.registry import DEFAULT_METHOD, NO_VARIANT, get_method
from hellora.placement import check_k
from hellora.choices import Method, Targets, Variant

if TYPE_CHECKING:
    from torch import nn


def count_parameters(model: nn.Module) -> dict:
    """{"trainable", "total", "trainable_pct", "by_role", "adapter_total"} of a (possibly adapted) model.

    by_role: trainable entries per adapter role (attention, router, experts, shared, dense; "base" for base
    weights that train, i.e. full fine-tuning); adapter_total: every adapter entry, frozen ones included.
    """
    from hellora.adapters.inject import adapter_layers
    from hellora.adapters.lori import mask_buffers

    role_of, adapter_total = {}, 0
    for path, layer in adapter_layers(model).items():
        for name, p in layer.named_parameters():
            if "lora_" in name:
                role_of[f"{path}.{name}"] = layer.role
                adapter_total += p.numel()
    masks = mask_buffers(model)
    # experts stored quantized (`hellora.quant`: buffers, not parameters) are still the model's weights: counted at
    # their full shape, so a run's trainable % does not depend on how its frozen experts are stored
    stores: list[Any] = [m for m in model.modules() if getattr(m, "is_expert_store", False)]
    total = sum(store.full_shape.numel() for store in stores)
    by_role: Counter = Counter()
    pending: Counter = Counter()  # LoRI-S B entries per role whose mask is not materialised (meta device)
    for name, p in model.named_parameters():
        total += p.numel()
        if not p.requires_grad:
            continue
        role, mask = role_of.get(name, "base"), masks.get(name)
        if mask is None:
            by_role[role] += p.numel()
        elif mask.device.type != "meta":
            by_role[role] += int(mask.sum())
        else:
            pending[role] += p.numel()
    if pending:
        state: Any = getattr(model, "hellora_adapter", None)
        by_role.update(split_kept(lori_keep_count(sum(pending.values()), state.config.lori_density), pending))
    return counted(by_role, total, adapter_total)


def _renamed_targets(config: AdapterConfig, placement: str | None, caller: str) -> AdapterConfig:
    """`placement`, the old name of `targets`, still accepted with a warning pointing at the caller's caller."""
    if placement is None:
        return config
    warnings.warn(f"{caller}(placement=...) is deprecated; use targets=...", FutureWarning, stacklevel=3)
    renamed: dict[str, Any] = {"targets": placement}  # parsed by AdapterConfig, as `targets` is
    return replace(config, **renamed)


def count_request(method: Method | str = DEFAULT_METHOD, *, r: int | None = None, alpha: float = 64.0,
                  targets: Targets | str = Targets.ALL, router: bool | None = None,
                  variant: Variant | str = NO_VARIANT, lori_density: float = 0.1,
                  loramoe_experts: int = 6) -> AdapterConfig:
    """The AdapterConfig of a count request (r defaults to the method's paper rank, `AdapterMethod.default_rank`:
    32, or 4 for LoRAMoE; alpha to the paper's 64)."""
    chosen = Method.parse(method, "method")
    rank = r if r is not None else get_method(chosen, Variant.parse(variant, "adapter.variant")).default_rank
    fields: dict[str, Any] = dict(method=chosen, r=rank, alpha=alpha, targets=targets, router=router, variant=variant,
                                  lori_density=lori_density, loramoe_experts=loramoe_experts)
    return AdapterConfig(**fields)  # AdapterConfig parses the names (targets, variant) as a recipe's


def _described(report: dict, model: str, config: AdapterConfig, k: int | None, num_experts: int, top_k: int,
               moe_layers: int) -> dict:
    rules = config.rules
    report.update(model=model, method=config.method.value, variant=config.variant.value,
                  k=k if rules.adapts_hot_experts else num_experts, r=config.r, targets=config.targets.value,
                  num_experts=num_experts, top_k=top_k, moe_layers=moe_layers)
    report.update(rules.report_fields(config))
    return report


def parameter_report(model: str, config: AdapterConfig | None = None, *, k: int | None = None,
                     trust_remote_code: bool = False, placement: str | None = None) -> dict:
    """Trainable / total parameters of the adapters `config` describes (default: `count_request()`, the paper's
    hellora) on `model` (preset, path or hub id), from its config.

    Build `config` with `count_request(method, r=..., variant=...)` for the paper's rank per method. k (hot-expert
    methods only) defaults to the paper's k for a preset (`hellora.models.presets.paper_k`), else the router's top-k.
    Presets are counted from their config values (no torch); anything else on the meta device
    (`meta_parameter_report`).
    """
    config = _renamed_targets(config or count_request(), placement, "parameter_report")
    if model not in PRESETS:
        return meta_parameter_report(model, config, k=k, trust_remote_code=trust_remote_code)
    shapes = model_shapes(PRESETS[model].config)
    hot_k = 0  # read only by methods that adapt hot experts
    if config.rules.adapts_hot_experts:
        hot_k = default_hot_k(k, model, shapes.top_k)
        check_k(hot_k, shapes.num_experts)
    report = count_from_shapes(shapes, config, hot_k)
    return _described(report, model, config, hot_k, shapes.num_experts, shapes.top_k, len(shapes.moe_layers))


def meta_parameter_report(model: str, config: AdapterConfig | None = None, *, k: int | None = None,
                          trust_remote_code: bool = False, placement: str | None = None,
                          overrides: dict | None = None) -> dict:
    """`parameter_report` by attaching the adapters `config` describes to `model` built on the meta device (config
    `overrides` applied): the count of the real modules, for any model hellora can attach to."""
    from hellora.adapters.inject import attach_adapters
    from hellora.models.families import describe_moe_model
    from hellora.models.loading import meta_model
    from hellora.placement import first_k_placement

    config = _renamed_targets(config or count_request(), placement, "meta_parameter_report")
    net = meta_model(model, trust_remote_code=trust_remote_code, overrides=overrides)
    spec = describe_moe_model(net)
    hot = None
    if config.rules.adapts_hot_experts:
        k = default_hot_k(k, model, spec.top_k)
        hot = first_k_placement(spec.moe_layer_indices, spec.num_experts, k)
    attach_adapters(net, config, hot, spec, init_lori=False)
    return _described(count_parameters(net), model, config, k, spec.num_experts, spec.top_k, len(spec.moe_layers))
