"""Test helpers: tiny models, a tiny DeepSeekMoE-layout model, and independent reference math."""

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


def reference_experts(experts_module, layout, x, top_k_index, top_k_weights, lora=None, hot=(), scale=1.0):
    """Explicit per-(token, slot) loop over experts, with LoRA on `hot` experts.

    lora: dict part -> (A (K, r, in), B (K, out, r)) for part in gate/up/down, slots in sorted(hot) order.
    """
    hot = sorted(hot)
    out = torch.zeros_like(x)
    i = layout.intermediate_size
    for t in range(x.shape[0]):
        for j in range(top_k_index.shape[1]):
            e = int(top_k_index[t, j])
            w_gu = experts_module.gate_up_proj[e]
            w_d = experts_module.down_proj[e]
            if layout.transposed:
                w_gu, w_d = w_gu.t(), w_d.t()  # -> (2I, H), (H, I)
            gu = w_gu @ x[t]
            if layout.has_bias:
                gu = gu + experts_module.gate_up_proj_bias[e]
            if layout.interleaved:
                gate, up = gu[0::2], gu[1::2]
            else:
                gate, up = gu[:i], gu[i:]
            if e in hot and lora is not None:
                s = hot.index(e)
                gate = gate + scale * lora["gate"][1][s] @ (lora["gate"][0][s] @ x[t])
                up = up + scale * lora["up"][1][s] @ (lora["up"][0][s] @ x[t])
            if layout.interleaved:  # gpt-oss gating
                limit, alpha = experts_module.limit, experts_module.alpha
                gate = gate.clamp(max=limit)
                up = up.clamp(min=-limit, max=limit)
                h = (up + 1) * (gate * torch.sigmoid(gate * alpha))
            else:
                h = F.silu(gate) * up
            y = w_d @ h
            if layout.has_bias:
                y = y + experts_module.down_proj_bias[e]
            if e in hot and lora is not None:
                s = hot.index(e)
                y = y + scale * lora["down"][1][s] @ (lora["down"][0][s] @ h)
            out[t] = out[t] + top_k_weights[t, j] * y
    return out
