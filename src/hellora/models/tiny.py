"""Tiny random-init MoE models of every supported family, built in-process (no downloads).

Tests, the demo and CPU runs of `hellora bench` use them. Sizes are multiples of 4 so the CPU grouped_mm
kernel (16-byte alignment in float32) is exercised, not only the loop fallback.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import PretrainedConfig, PreTrainedModel

from hellora.models.loading import config_for_model, model_from_config

COMMON = dict(vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
              max_position_embeddings=128, tie_word_embeddings=False, pad_token_id=0, bos_token_id=1,
              eos_token_id=2)

FAMILIES: dict[str, dict] = {
    "olmoe": dict(intermediate_size=16, num_experts=8, num_experts_per_tok=2),
    "mixtral": dict(intermediate_size=16, num_local_experts=8, num_experts_per_tok=2),
    "qwen2_moe": dict(intermediate_size=48, moe_intermediate_size=16, shared_expert_intermediate_size=24,
                      num_experts=8, num_experts_per_tok=2, decoder_sparse_step=1, mlp_only_layers=[0],
                      num_hidden_layers=3),
    "qwen3_moe": dict(intermediate_size=48, moe_intermediate_size=16, num_experts=8, num_experts_per_tok=2,
                      head_dim=8, norm_topk_prob=True),
    "deepseek_v2": dict(intermediate_size=48, moe_intermediate_size=16, n_routed_experts=8, n_shared_experts=1,
                        num_experts_per_tok=2, first_k_dense_replace=1, num_hidden_layers=3, kv_lora_rank=16,
                        q_lora_rank=None, qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=8, head_dim=8,
                        num_key_value_heads=4, topk_method="greedy"),
    "deepseek_v3": dict(intermediate_size=48, moe_intermediate_size=16, n_routed_experts=8, n_shared_experts=1,
                        num_experts_per_tok=2, first_k_dense_replace=1, num_hidden_layers=3, kv_lora_rank=16,
                        q_lora_rank=24, qk_nope_head_dim=8, qk_rope_head_dim=8, v_head_dim=8, head_dim=8,
                        num_key_value_heads=4, n_group=2, topk_group=1, routed_scaling_factor=2.5),
    "granitemoe": dict(intermediate_size=16, num_local_experts=8, num_experts_per_tok=2),
    "granitemoeshared": dict(intermediate_size=16, num_local_experts=8, num_experts_per_tok=2,
                             shared_intermediate_size=24),
    "gpt_oss": dict(intermediate_size=16, num_local_experts=8, num_experts_per_tok=2, head_dim=8,
                    layer_types=["sliding_attention", "full_attention"], sliding_window=16),
}


def tiny_config(family: str, **overrides: Any) -> PretrainedConfig:
    """A small config of `family` (a transformers model_type in `FAMILIES`)."""
    values = {**COMMON, **FAMILIES[family], **overrides}
    config = config_for_model(family, **values)
    return config


def tiny_model(family: str, seed: int = 0, dtype: torch.dtype = torch.float32, **overrides: Any) -> PreTrainedModel:
    """A random-init tiny causal LM of `family`, in eval mode, with every weight drawn from a seeded RNG.

    Routers are zero-initialised by transformers; a random router keeps routing non-degenerate.
    """
    config = tiny_config(family, **overrides)
    torch.manual_seed(seed)
    model = model_from_config(config, dtype=dtype)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.08)
            elif "bias" in name:
                p.copy_(torch.randn(p.shape, generator=generator) * 0.02)
        for name, b in model.named_buffers():
            if name.endswith("e_score_correction_bias"):
                b.copy_(torch.randn(b.shape, generator=generator) * 0.01)
    return model.eval()
