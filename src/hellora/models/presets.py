"""Offline architecture presets: the public config values of the paper's three backbones (and Qwen3-MoE), so
parameter accounting, benchmarks and recipes run without network access.

Each preset also names the hub id users load real weights from and the paper's k: OLMoE 8, Mixtral 2, DeepSeekMoE
12 (the paper's hot experts per layer, used as the default k by `hellora flops`, `hellora params` and the recipes;
for DeepSeekMoE it is twice the router's top-k of 6).
"""

from __future__ import annotations

from dataclasses import dataclass

from hellora.utils.errors import HelloraError
from hellora.choices import resolve_hot_k


@dataclass(frozen=True)
class Preset:
    name: str
    hub_id: str
    k: int
    config: dict
    remote_code: bool = False


PRESETS: dict[str, Preset] = {
    "olmoe-1b-7b": Preset(
        "olmoe-1b-7b", "allenai/OLMoE-1B-7B-0924", 8,
        dict(model_type="olmoe", vocab_size=50304, hidden_size=2048, intermediate_size=1024, num_hidden_layers=16,
             num_attention_heads=16, num_key_value_heads=16, num_experts=64, num_experts_per_tok=8,
             max_position_embeddings=4096, rms_norm_eps=1e-5, norm_topk_prob=False, tie_word_embeddings=False,
             pad_token_id=1, bos_token_id=None, eos_token_id=50279, router_aux_loss_coef=0.01),
    ),
    "mixtral-8x7b": Preset(
        "mixtral-8x7b", "mistralai/Mixtral-8x7B-v0.1", 2,
        dict(model_type="mixtral", vocab_size=32000, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
             num_attention_heads=32, num_key_value_heads=8, num_local_experts=8, num_experts_per_tok=2,
             max_position_embeddings=32768, rms_norm_eps=1e-5, tie_word_embeddings=False, bos_token_id=1,
             eos_token_id=2, router_aux_loss_coef=0.02),
    ),
    "deepseek-moe-16b": Preset(
        "deepseek-moe-16b", "deepseek-ai/deepseek-moe-16b-base", 12,
        dict(model_type="deepseek", vocab_size=102400, hidden_size=2048, intermediate_size=10944,
             moe_intermediate_size=1408, num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=16,
             n_routed_experts=64, n_shared_experts=2, num_experts_per_tok=6, first_k_dense_replace=1,
             moe_layer_freq=1, norm_topk_prob=False, scoring_func="softmax", rms_norm_eps=1e-6,
             max_position_embeddings=4096, tie_word_embeddings=False, bos_token_id=100000, eos_token_id=100001),
        remote_code=True,
    ),
    "qwen3-30b-a3b": Preset(
        "qwen3-30b-a3b", "Qwen/Qwen3-30B-A3B", 8,
        dict(model_type="qwen3_moe", vocab_size=151936, hidden_size=2048, intermediate_size=6144,
             moe_intermediate_size=768, num_hidden_layers=48, num_attention_heads=32, num_key_value_heads=4,
             head_dim=128, num_experts=128, num_experts_per_tok=8, norm_topk_prob=True, decoder_sparse_step=1,
             max_position_embeddings=40960, rms_norm_eps=1e-6, tie_word_embeddings=False),
    ),
}


def paper_k(model: str) -> int | None:
    """The paper's hot k for a preset name or its hub id; None for any other model (then the router's top-k)."""
    for preset in PRESETS.values():
        if model in (preset.name, preset.hub_id):
            return preset.k
    return None


def default_hot_k(k: int | None, model: str, router_top_k: int) -> int:
    """Hot experts per layer for `model`: the requested k, else the paper's k for a preset, else the router's top-k
    (`hellora.choices.resolve_hot_k`)."""
    return resolve_hot_k(k if k is not None else paper_k(model), router_top_k)


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]
    except KeyError:
        raise HelloraError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}") from None
