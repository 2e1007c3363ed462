"""Attaching adapters to a model in place (no math here: the layers own it).

    spec = describe_moe_model(model)
    attach_adapters(model, AdapterConfig(method="hellora"), placement)   # model is now adapted and frozen

Which modules are wrapped, per `AdapterConfig.targets`:
    experts (every target set): the placement's experts of each MoE layer (all experts for methods "lora" and
                               "loramoe"), every Linear of shared experts and of dense MLP layers
    router  ("gate", "all"):   the router weight of each MoE layer (never for "loramoe")
    attention ("all"):         every Linear inside each attention module (q/k/v/o, MLA's q_a/q_b/kv_a/kv_b;
                               never for "loramoe"); plain LoRA projections that read one input share one
                               A product (`AdapterConfig.fuse_shared_inputs`, shared_input.py)

With which layer, per method and variant:
    plain LoRA / LoRI-D / LoRI-S  LoRALinear, RouterLoRA, HotExpertsLoRA (LoRI freezes A and masks B: lori.py)
    DoRA                          DoRALinear, DoRARouter, HotExpertsLoRA of ExpertDoRAWeights (dora.py)
    LoRAMoE                       LoRAMoELinear, HotExpertsLoRA of ExpertLoRAMoEWeights (loramoe.py)
    full fine-tuning ("fft")      nothing is wrapped: every base parameter is made trainable
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator
import torch
from torch import nn

from hellora.adapters.base import AdapterLayer
from hellora.adapters.config import AdapterConfig
from hellora.adapters.experts import HotExpertsLoRA
from hellora.adapters.lori import LoRIDAdapter, apply_lori, init_lori_s
from hellora.adapters.shared_input import group_shared_inputs
from hellora.models.families import MoEModelSpec, describe_moe_model
from hellora.models.fingerprint import config_fingerprint, model_name
from hellora.placement import HotExpertPlacement, saved_strategy
from hellora.utils.dtypes import DTYPES
from hellora.utils.errors import HelloraError
from hellora.choices import ExpertStorage, Strategy


@dataclass
class AdapterState:
    """What was attached, kept on the model as `model.hellora_adapter` (saved with the adapter)."""

    config: AdapterConfig
    experts: dict[int, list[int]]
    model_id: str | None
    fingerprint: str
    router_adapted: bool = False
    placement: dict = field(default_factory=dict)  # the placement file's content, for provenance


def _set_submodule(model: nn.Module, path: str, module: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, name, module)


def _wrap_linears(model: nn.Module, path: str, role: str, make: Callable[[nn.Linear, str], nn.Module]) -> None:
    root = model.get_submodule(path)
    targets = [(n, m) for n, m in root.named_modules() if isinstance(m, nn.Linear)]
    for name, linear in targets:
        full = f"{path}.{name}" if name else path
        _set_submodule(model, full, make(linear, role))


def resolve_experts(
    spec: MoEModelSpec, config: AdapterConfig, placement: HotExpertPlacement | None, model: nn.Module
) -> dict[int, list[int]]:
    """Layer index -> expert ids to adapt; checks the placement belongs to this model."""
    layers = spec.moe_layer_indices
    if not config.rules.adapts_hot_experts:
        return {layer: list(range(spec.num_experts)) for layer in layers}
    if placement is None:
        raise HelloraError(f"method {config.method!r} needs a placement: profile the task, then select hot experts")
    fingerprint = config_fingerprint(model.config)
    if placement.fingerprint and placement.fingerprint != fingerprint:
        raise HelloraError(
            f"placement was made for another model (model {placement.model_id!r}, fingerprint "
            f"{placement.fingerprint}); this model {model_name(model)!r} has fingerprint {fingerprint}"
        )
    if placement.num_experts != spec.num_experts:
        raise HelloraError(f"placement has {placement.num_experts} experts per layer; the model has {spec.num_experts}")
    missing = [layer for layer in layers if layer not in placement.experts]
    extra = sorted(set(placement.experts) - set(layers))
    if missing or extra:
        raise HelloraError(
            f"placement layers do not match the model's MoE layers {layers}: "
            + (f"missing {missing}" if missing else f"unknown {extra}")
        )
    return {layer: list(placement.experts[layer]) for layer in layers}


def _lori_s_placement(lori_d: LoRIDAdapter, spec: MoEModelSpec) -> HotExpertPlacement:
    """The placement of the LoRI-D adapter a LoRI-S run continues from."""
    record = lori_d.record
    return HotExpertPlacement(lori_d.experts, spec.num_experts,
                              saved_strategy(record.get("placement", {}).get("strategy")),
                              fingerprint=record.get("fingerprint"), model_id=record.get("base_model"))


def attach_adapters(
    model: nn.Module, config: AdapterConfig | None = None, placement: HotExpertPlacement | None = None,
    spec: MoEModelSpec | None = None, *, lori_d: LoRIDAdapter | None = None, init_lori: bool = True,
) -> nn.Module:
    """Freeze `model` and wrap its modules with adapters as `config` and `placement` say; returns `model`.

    Reads no file. Method "fft" wraps nothing and makes every parameter trainable (no `hellora_adapter` state:
    save the model itself). Variant "lori_s" takes A and the mask from the finished LoRI-D adapter `lori_d`
    (`hellora.adapters.io.read_lori_d(config.lori_from)`), and for "hellora" without a placement that adapter's
    placement too; `init_lori=False` leaves the masks empty for a caller that fills them (`load_adapter`, or the
    meta-device accounting).
    """
    config = config or AdapterConfig()
    if getattr(model, "hellora_adapter", None) is not None:
        raise HelloraError("this model already has hellora adapters attached")
    rules = config.rules
    if rules.trains_whole_model:
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    spec = spec or describe_moe_model(model)
    lori_s = rules.continues_from_lori_d
    if lori_s and rules.adapts_hot_experts and placement is None and lori_d is not None and init_lori:
        placement = _lori_s_placement(lori_d, spec)
    experts_map = resolve_experts(spec, config, placement, model)
    dtype = DTYPES[config.adapter_dtype]
    generator = torch.Generator().manual_seed(config.seed)
    opts: dict[str, Any] = dict(dtype=dtype, init=config.init, generator=generator)
    linear_cls, router_cls, weights_cls = rules.layer_classes(config)
    on_meta = any(p.device.type == "meta" for p in model.parameters())
    if lori_s and init_lori and lori_d is None and not on_meta:
        raise HelloraError("adapter.lori_from: variant 'lori_s' needs a finished LoRI-D adapter (its A and the mask "
                           "of its largest B entries): attach with lori_d=hellora.adapters.io.read_lori_d(FOLDER)")

    for p in model.parameters():
        p.requires_grad_(False)

    def linear(module: nn.Linear, role: str) -> nn.Module:
        return linear_cls(module, config.r, config.alpha, role=role, dropout=config.dropout, **opts)

    router_adapted = False
    for layer in spec.layers:
        if config.adapts_attention and layer.attention_path:
            _wrap_linears(model, layer.attention_path, "attention", linear)
            if config.fuse_shared_inputs:
                group_shared_inputs(model.get_submodule(layer.attention_path))
        if layer.dense_mlp_path:
            _wrap_linears(model, layer.dense_mlp_path, "dense", linear)
        moe = layer.moe
        if moe is None:
            continue
        for shared in moe.shared_paths:
            _wrap_linears(model, shared, "shared", linear)
        if config.adapts_router(fused=moe.kind is ExpertStorage.FUSED) and moe.router_path:
            router = model.get_submodule(moe.router_path)
            weight = getattr(router, "weight", None)
            if not (isinstance(weight, torch.Tensor) and weight.dim() == 2):
                raise HelloraError(f"{moe.router_path}: router {type(router).__name__} has no 2D weight to adapt")
            assert router_cls is not None  # a method without a router wrapper (LoRAMoE) takes no targets
            _set_submodule(model, moe.router_path, router_cls(router, config.r, config.alpha, **opts))
            router_adapted = True
        hot = experts_map[moe.layer_index]
        if moe.kind is ExpertStorage.FUSED:
            experts = model.get_submodule(moe.experts_path)
            assert moe.layout is not None  # every fused experts module has its layout
            _set_submodule(model, moe.experts_path, HotExpertsLoRA(
                experts, moe.layout, hot, config.r, config.alpha, dropout=config.dropout, weights_cls=weights_cls,
                **opts))
        else:
            for e in hot:
                _wrap_linears(model, f"{moe.experts_path}.{e}", "experts", linear)

    # torch types Module.__setattr__ for tensors and modules; any other value is kept as a plain attribute
    model.hellora_adapter = AdapterState(  # type: ignore[assignment]
        config=config, experts=experts_map, model_id=model_name(model), fingerprint=config_fingerprint(model.config),
        router_adapted=router_adapted,
        placement=placement.to_dict() if placement else {"strategy": Strategy.ALL.value},
    )
    if rules.freezes_a:
        apply_lori(model, masked=rules.masks_b)
    if lori_s and init_lori and lori_d is not None:
        init_lori_s(model, lori_d, config.lori_density)
    return model


def adapter_layers(model: nn.Module) -> dict[str, AdapterLayer]:
    """Module path -> adapter layer, in model order."""
    return {name: m for name, m in model.named_modules() if isinstance(m, AdapterLayer)}


def adapter_parameters(model: nn.Module) -> dict[str, nn.Parameter]:
    """Every adapter weight by its full name (frozen LoRI A included: it is part of the adapter)."""
    return {n: p for n, p in model.named_parameters() if "lora_" in n.rsplit(".", 2)[-1] or ".lora_" in n}


@contextmanager
def disable_adapters(model: nn.Module) -> Iterator[nn.Module]:
    """Run the frozen base model: every adapter layer passes its input through its base module only."""
    layers = list(adapter_layers(model).values())
    previous = [layer.adapter_enabled for layer in layers]
    for layer in layers:
        layer.adapter_enabled = False
    try:
        yield model
    finally:
        for layer, was in zip(layers, previous):
            layer.adapter_enabled = was


def check_mergeable(model: nn.Module) -> None:
    """Raise, naming why, when an adapter's update depends on the input (LoRAMoE) and cannot be merged."""
    for layer in adapter_layers(model).values():
        if not layer.mergeable:
            layer.merged_base()  # raises, naming why


@torch.no_grad()
def merge_adapters(model: nn.Module) -> nn.Module:
    """Fold every adapter into its base weights and unwrap it (like PEFT's merge_and_unload); returns `model`.

    Refused, before anything is changed, when an adapter's update depends on the input (LoRAMoE).
    """
    check_mergeable(model)
    # innermost first is irrelevant: hellora never nests adapter layers
    for path, layer in list(adapter_layers(model).items()):
        _set_submodule(model, path, layer.merged_base())
    model.hellora_adapter = None  # type: ignore[assignment]  # a plain attribute (see attach_adapters)
    return model


def remove_adapters(model: nn.Module) -> nn.Module:
    """Unwrap every adapter layer without merging: the model is its frozen base again (the paper discards the
    warm-up adapter this way before the main run)."""
    for path, layer in list(adapter_layers(model).items()):
        _set_submodule(model, path, layer.base_layer)
    model.hellora_adapter = None  # type: ignore[assignment]  # a plain attribute (see attach_adapters)
    return model
