"""Finding the parts of a Mixture-of-Experts model that hellora adapts.

transformers 5 MoE families (OLMoE, Mixtral, Qwen2/3-MoE, DeepSeek-V2/V3, GraniteMoE(+shared), gpt-oss) share
one shape: a decoder layer holds `self_attn` and an FFN block (`mlp` or `block_sparse_moe`) whose `experts`
module stores all experts as fused 3D parameters and whose router (`gate` or `router`) is a module with a raw
`weight (E, H)`. `trust_remote_code` models such as DeepSeekMoE-16B instead keep experts as an
`nn.ModuleList` of MLPs with `gate_proj / up_proj / down_proj` and route with a `gate` module returning
`(topk_idx, topk_weight, ...)`. Both layouts, shared experts and dense MLP layers are described here by plain
dataclasses holding module *paths*, so the rest of the package never needs to know a family by name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeGuard

import torch
from torch import nn

from hellora.choices import ExpertStorage
from hellora.utils.errors import HelloraError

FFN_NAMES = ("mlp", "block_sparse_moe", "feed_forward", "moe")
ROUTER_NAMES = ("gate", "router")
SHARED_IN_BLOCK = ("shared_expert", "shared_experts")
SHARED_IN_LAYER = ("shared_mlp",)
ATTENTION_NAMES = ("self_attn", "attention", "attn")


@dataclass(frozen=True)
class FusedExpertLayout:
    """How a fused experts module stores its weights.

    Standard:  gate_up_proj (E, 2I, H) with [gate; up] concatenated along dim 1, down_proj (E, H, I).
    Transposed (gpt-oss): gate_up_proj (E, H, 2I), down_proj (E, I, H).
    Interleaved (gpt-oss): gate/up columns alternate (gate = [..., 0::2], up = [..., 1::2]).
    """

    num_experts: int
    hidden_size: int
    intermediate_size: int
    transposed: bool = False
    interleaved: bool = False
    has_bias: bool = False


@dataclass
class MoELayerSpec:
    """One MoE block. Paths are dotted names from the model root (as in `model.named_modules()`)."""

    layer_index: int
    moe_index: int  # position among MoE layers (rows of a profile)
    block_path: str
    experts_path: str
    router_path: str | None
    kind: ExpertStorage
    num_experts: int
    top_k: int
    shared_paths: list[str] = field(default_factory=list)
    layout: FusedExpertLayout | None = None


@dataclass
class DecoderLayerSpec:
    index: int
    attention_path: str | None
    moe: MoELayerSpec | None
    dense_mlp_path: str | None


@dataclass
class MoEModelSpec:
    """Everything hellora needs to know about a model's structure."""

    model_type: str
    layers: list[DecoderLayerSpec]

    @property
    def moe_layers(self) -> list[MoELayerSpec]:
        return [layer.moe for layer in self.layers if layer.moe is not None]

    @property
    def num_experts(self) -> int:
        return self.moe_layers[0].num_experts

    @property
    def top_k(self) -> int:
        return self.moe_layers[0].top_k

    @property
    def moe_layer_indices(self) -> list[int]:
        return [m.layer_index for m in self.moe_layers]


def _find_decoder_layers(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The model's stack of decoder layers: the first `*.layers` ModuleList whose blocks have attention."""
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and name.split(".")[-1] in ("layers", "h", "blocks") and len(module):
            if any(hasattr(module[0], a) for a in ATTENTION_NAMES):
                return name, module
    raise HelloraError(
        f"{type(model).__name__}: could not find a stack of decoder layers (a `layers` ModuleList whose blocks "
        f"have a `self_attn` module); hellora supports decoder-only transformers"
    )


def _child(module: nn.Module, names: tuple[str, ...]) -> tuple[str, nn.Module] | tuple[None, None]:
    for name in names:
        child = getattr(module, name, None)
        if isinstance(child, nn.Module):
            return name, child
    return None, None


def _router_top_k(router: nn.Module | None, block: nn.Module, config) -> int:
    for owner in (router, block):
        for attr in ("top_k", "num_experts_per_tok"):
            value = getattr(owner, attr, None)
            if isinstance(value, int) and value > 0:
                return value
    for attr in ("num_experts_per_tok", "moe_topk", "top_k"):
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    raise HelloraError(f"{type(router).__name__}: cannot tell the router's top-k (no top_k attribute or config)")


def _is_fused_weight(value) -> bool:
    """A fused expert parameter, or its per-expert quantized store (`hellora.quant`), which answers to the same
    shape questions."""
    return isinstance(value, torch.Tensor) or getattr(value, "is_expert_store", False)


def fused_expert_layout(experts: nn.Module) -> FusedExpertLayout | None:
    """Layout of a fused experts module, or None when it is not one (no 3D gate_up_proj/down_proj)."""
    gate_up = getattr(experts, "gate_up_proj", None)
    down = getattr(experts, "down_proj", None)
    if not (_is_fused_weight(gate_up) and _is_fused_weight(down)):
        return None
    assert gate_up is not None and down is not None  # (None is no fused weight)
    if gate_up.dim() != 3 or down.dim() != 3:
        return None
    num_experts = gate_up.shape[0]
    transposed = getattr(experts, "is_transposed", None)
    if transposed is None:  # older decorators: infer from the shapes
        transposed = gate_up.shape[2] == 2 * down.shape[1] and gate_up.shape[1] == down.shape[2]
    if transposed:
        hidden, two_i = gate_up.shape[1], gate_up.shape[2]
        ok = down.shape[1:] == (two_i // 2, hidden)
    else:
        two_i, hidden = gate_up.shape[1], gate_up.shape[2]
        ok = down.shape[1:] == (hidden, two_i // 2)
    if not ok or two_i % 2:
        raise HelloraError(
            f"{type(experts).__name__}: gate_up_proj {tuple(gate_up.shape)} and down_proj {tuple(down.shape)} do not "
            f"form a gated expert layout hellora knows (expected (E, 2I, H)/(E, H, I) or transposed)"
        )
    interleaved = not getattr(experts, "is_concatenated", True)
    has_bias = isinstance(getattr(experts, "gate_up_proj_bias", None), torch.Tensor)
    return FusedExpertLayout(num_experts, hidden, two_i // 2, bool(transposed), bool(interleaved), has_bias)


def _is_linear(module) -> bool:
    """An nn.Linear, or an adapter wrapping one (so an adapted model is still described)."""
    return isinstance(module, nn.Linear) or isinstance(getattr(module, "base_layer", None), nn.Linear)


def _is_modulelist_experts(experts: nn.Module) -> TypeGuard[nn.ModuleList]:
    return (
        isinstance(experts, nn.ModuleList)
        and len(experts) > 0
        and all(_is_linear(getattr(experts[0], p, None)) for p in ("gate_proj", "up_proj", "down_proj"))
    )


def _has_linear(module: nn.Module) -> bool:
    return any(isinstance(m, nn.Linear) for m in module.modules())


def describe_moe_model(model: nn.Module) -> MoEModelSpec:
    """Walk a causal LM and describe its attention, MoE, shared-expert and dense-MLP modules.

    Raises `HelloraError` naming what was found for dense models and for expert layouts hellora does not know.
    """
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", type(model).__name__)
    stack_path, stack = _find_decoder_layers(model)
    layers: list[DecoderLayerSpec] = []
    moe_index = 0
    found_ffn: list[str] = []
    for i, layer in enumerate(stack):
        prefix = f"{stack_path}.{i}"
        attn_name, _ = _child(layer, ATTENTION_NAMES)
        ffn_name, ffn = _child(layer, FFN_NAMES)
        attention_path = f"{prefix}.{attn_name}" if attn_name else None
        moe = None
        dense = None
        if ffn is not None:
            found_ffn.append(type(ffn).__name__)
            block_path = f"{prefix}.{ffn_name}"
            experts = getattr(ffn, "experts", None)
            if isinstance(experts, nn.Module):
                router_name, router = _child(ffn, ROUTER_NAMES)
                shared = [f"{block_path}.{n}" for n in SHARED_IN_BLOCK if isinstance(getattr(ffn, n, None), nn.Module)]
                shared += [f"{prefix}.{n}" for n in SHARED_IN_LAYER if isinstance(getattr(layer, n, None), nn.Module)]
                layout = fused_expert_layout(experts)
                if layout is not None:
                    kind, num_experts = ExpertStorage.FUSED, layout.num_experts
                elif _is_modulelist_experts(experts):
                    kind, num_experts = ExpertStorage.MODULELIST, len(experts)
                else:
                    raise HelloraError(
                        f"{type(model).__name__} layer {i}: experts module {type(experts).__name__} is neither fused "
                        f"3D gate_up_proj/down_proj parameters nor a ModuleList of gate_proj/up_proj/down_proj MLPs; "
                        f"found parameters {[n for n, _ in experts.named_parameters(recurse=False)][:6]}"
                    )
                moe = MoELayerSpec(
                    layer_index=i,
                    moe_index=moe_index,
                    block_path=block_path,
                    experts_path=f"{block_path}.experts",
                    router_path=f"{block_path}.{router_name}" if router_name else None,
                    kind=kind,
                    num_experts=num_experts,
                    top_k=_router_top_k(router, ffn, config),
                    shared_paths=shared,
                    layout=layout,
                )
                moe_index += 1
            elif _has_linear(ffn):
                dense = block_path
        layers.append(DecoderLayerSpec(i, attention_path, moe, dense))
    if moe_index == 0:
        kinds = sorted(set(found_ffn)) or ["none"]
        raise HelloraError(
            f"{type(model).__name__} (model_type={model_type!r}) has no Mixture-of-Experts layers: its {len(stack)} "
            f"decoder layers hold {', '.join(kinds)}; hellora adapts MoE models (OLMoE, Mixtral, Qwen-MoE, "
            f"DeepSeek, GraniteMoE, gpt-oss, DeepSeekMoE remote code)"
        )
    experts_counts = {m.num_experts for m in [layer.moe for layer in layers if layer.moe]}
    if len(experts_counts) != 1:
        raise HelloraError(f"{type(model).__name__}: MoE layers have different expert counts {sorted(experts_counts)}")
    return MoEModelSpec(model_type=model_type, layers=layers)
