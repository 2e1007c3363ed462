"""Test helpers and the one independent reference for expert math.

Tiny models (a DeepSeekMoE-layout model), a hand-made placement, and explicit per-(token, slot) loops over dense
per-expert weights sliced out of the fused parameters by hand (`base_weight`), written from the formulas and
sharing no code with `hellora.adapters` or `hellora.kernels`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hellora.models.deepseek_moe import DeepseekMoELayoutConfig, DeepseekMoELayoutForCausalLM
from hellora.models.families import describe_moe_model
from hellora.placement import HotExpertPlacement


def tiny_deepseek_layout(seed: int = 0) -> DeepseekMoELayoutForCausalLM:
    config = DeepseekMoELayoutConfig(vocab_size=128, hidden_size=32, intermediate_size=48, moe_intermediate_size=16,
                                     num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=4,
                                     n_routed_experts=8, n_shared_experts=2, num_experts_per_tok=2,
                                     first_k_dense_replace=1, pad_token_id=0)
    torch.manual_seed(seed)
    model = DeepseekMoELayoutForCausalLM(config)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.normal_(0, 0.08)
    return model.eval()


def first_k_placement(model, experts=(0, 3)) -> HotExpertPlacement:
    spec = describe_moe_model(model)
    return HotExpertPlacement({l: list(experts) for l in spec.moe_layer_indices}, spec.num_experts, "manual")


def base_weight(experts, layout, e: int, part: str) -> torch.Tensor:
    """Expert e's (out, in) weight of `part`, sliced out of the fused parameters by hand."""
    i = layout.intermediate_size
    if part == "down":
        w = experts.down_proj[e]
        return w.t() if layout.transposed else w
    gu = experts.gate_up_proj[e]
    gu = gu.t() if layout.transposed else gu  # (2I, H)
    if layout.interleaved:
        return gu[0::2] if part == "gate" else gu[1::2]
    return gu[:i] if part == "gate" else gu[i:]


def base_bias(experts, layout, e: int, part: str):
    if not layout.has_bias:
        return None
    if part == "down":
        return experts.down_proj_bias[e]
    b = experts.gate_up_proj_bias[e]
    if layout.interleaved:
        return b[0::2] if part == "gate" else b[1::2]
    i = layout.intermediate_size
    return b[:i] if part == "gate" else b[i:]


def loop_experts(experts, layout, x, top_k_index, top_k_weights, project):
    """out[t] = sum_j w[t, j] * expert_{idx[t, j]}(x[t]) where each projection is `project(e, part, v)` (no bias)."""
    out = torch.zeros_like(x)
    for t in range(x.shape[0]):
        for j in range(top_k_index.shape[1]):
            e = int(top_k_index[t, j])
            parts = {}
            for part in ("gate", "up"):
                v = project(e, part, x[t])
                b = base_bias(experts, layout, e, part)
                parts[part] = v + b if b is not None else v
            gate, up = parts["gate"], parts["up"]
            if layout.interleaved:  # gpt-oss gating
                gate = gate.clamp(max=experts.limit)
                up = up.clamp(min=-experts.limit, max=experts.limit)
                h = (up + 1) * (gate * torch.sigmoid(gate * experts.alpha))
            else:
                h = F.silu(gate) * up
            y = project(e, "down", h)
            b = base_bias(experts, layout, e, "down")
            y = y + b if b is not None else y
            out[t] = out[t] + top_k_weights[t, j] * y
    return out


def dora_weight(w, a, b, m, scale):
    """m * (W + sBA) / ||W + sBA||_row with the norm a constant (DoRA Sec. 4.3)."""
    v = w + scale * b @ a
    return (m / v.detach().norm(dim=1)).unsqueeze(1) * v


def mixture(v, a, b, router, scale):
    """s * sum_i softmax(R v)_i B_i A_i v for one vector v; a (N, r, in), b (N, out, r), router (N, in)."""
    g = torch.softmax(router @ v, dim=-1)
    return scale * sum(g[i] * (b[i] @ (a[i] @ v)) for i in range(a.shape[0]))


def reference_experts(experts_module, layout, x, top_k_index, top_k_weights, lora=None, hot=(), scale=1.0):
    """Explicit per-(token, slot) loop over experts, with LoRA on `hot` experts.

    lora: dict part -> (A (K, r, in), B (K, out, r)) for part in gate/up/down, slots in sorted(hot) order.
    """
    hot = sorted(hot)

    def project(e: int, part: str, v: torch.Tensor) -> torch.Tensor:
        y = base_weight(experts_module, layout, e, part) @ v
        if e in hot and lora is not None:
            a, b = lora[part]
            y = y + scale * b[hot.index(e)] @ (a[hot.index(e)] @ v)
        return y

    return loop_experts(experts_module, layout, x, top_k_index, top_k_weights, project)
