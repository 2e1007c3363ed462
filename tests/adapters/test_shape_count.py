"""The torch-free parameter count of presets (`models/shapes.py` + `adapters/shape_count.py`) against the count of
the real modules: adapters attached to the model built on the meta device (`meta_parameter_report`)."""

import itertools
import json
import subprocess
import sys

import pytest

from hellora.adapters.accounting import count_request, meta_parameter_report, parameter_report
from hellora.adapters.config import AdapterConfig
from hellora.adapters.shape_count import count_from_shapes
from hellora.memory_plan import meta_model_sizes, model_sizes
from hellora.models.presets import PRESETS, default_hot_k
from hellora.models.shapes import model_shapes
from hellora.utils.errors import HelloraError

KEYS = ("trainable", "total", "by_role", "adapter_total")
METHODS = [("hellora", "none"), ("hellora", "dora"), ("hellora", "lori_d"), ("hellora", "lori_s"), ("lora", "none"),
           ("lora", "dora"), ("lora", "lori_d"), ("lora", "lori_s"), ("loramoe", "none"), ("fft", "none")]
# Reduced configs of each family: a few layers, other widths, other head counts, tied embeddings, other layouts.
REDUCED = {
    "olmoe-1b-7b": [dict(num_hidden_layers=2), dict(num_hidden_layers=1, num_key_value_heads=4, hidden_size=256,
                                                    intermediate_size=96, num_experts=6, num_experts_per_tok=2,
                                                    tie_word_embeddings=True, vocab_size=1000, eos_token_id=2)],
    "mixtral-8x7b": [dict(num_hidden_layers=1), dict(num_hidden_layers=2, hidden_size=128, intermediate_size=80,
                                                     num_attention_heads=8, num_key_value_heads=2, vocab_size=500)],
    "deepseek-moe-16b": [dict(num_hidden_layers=3, n_routed_experts=8),
                         dict(num_hidden_layers=5, first_k_dense_replace=2, moe_layer_freq=2, n_shared_experts=1,
                              n_routed_experts=6, hidden_size=128, intermediate_size=300, moe_intermediate_size=40,
                              vocab_size=700, bos_token_id=1, eos_token_id=2)],
    "qwen3-30b-a3b": [dict(num_hidden_layers=1, num_experts=16),
                      dict(num_hidden_layers=2, head_dim=32, num_attention_heads=4, num_key_value_heads=2,
                           hidden_size=96, moe_intermediate_size=24, num_experts=5, num_experts_per_tok=3,
                           vocab_size=300)],
}
CASES = [(preset, i) for preset, configs in REDUCED.items() for i in range(len(configs))]


def arithmetic(preset: str, overrides: dict, config: AdapterConfig, k: int | None) -> dict:
    shapes = model_shapes({**PRESETS[preset].config, **overrides})
    return count_from_shapes(shapes, config, default_hot_k(k, preset, shapes.top_k))


def picked(report: dict) -> dict:
    """The counts, with by_role as an ordered list (both paths print roles in one order)."""
    return {key: list(report[key].items()) if key == "by_role" else report[key] for key in KEYS}


@pytest.mark.parametrize("preset, which", CASES, ids=[f"{p}-{i}" for p, i in CASES])
def test_every_method_variant_and_target_set_counts_as_the_meta_model(preset, which):
    overrides = REDUCED[preset][which]
    combos = [(m, v, t, 2) for (m, v), t in itertools.product(METHODS, ("pure", "gate", "all"))]
    combos += [("hellora", "none", "all", 1), ("hellora", "lori_s", "gate", 3), ("hellora", "dora", "pure", 5)]
    for method, variant, targets, k in combos:
        for router in (None, True) if method in ("hellora", "lora") and targets != "pure" else (None,):
            kw = dict(r=4 if method == "loramoe" else 8, targets=targets, router=router, variant=variant,
                      lori_density=0.3, loramoe_experts=3)
            meta = meta_parameter_report(preset, count_request(method, **kw), k=k, overrides=overrides)
            config = AdapterConfig(method=method, alpha=16.0, **kw)
            assert picked(arithmetic(preset, overrides, config, k)) == picked(meta), (method, variant, targets, router)


@pytest.mark.slow
@pytest.mark.parametrize("preset", list(PRESETS))
def test_full_size_presets_count_as_the_meta_model(preset):
    for method, variant in (("hellora", "none"), ("lora", "lori_s"), ("loramoe", "none"), ("fft", "none")):
        config = count_request(method, variant=variant)
        fast = parameter_report(preset, config)
        assert picked(fast) == picked(meta_parameter_report(preset, config)), (method, variant)
        assert fast["trainable_pct"] == pytest.approx(100 * fast["trainable"] / fast["total"])
    for trainable in (123, 10 ** 12):  # an adapter, and full fine-tuning (no frozen base)
        assert model_sizes(preset, trainable) == meta_model_sizes(preset, trainable)


def test_hand_counted_mixtral_layer():
    shapes = model_shapes(PRESETS["mixtral-8x7b"].config)
    h, i, e, kv = 4096, 14336, 8, 1024
    assert shapes.layers[0].size == 2 * h * h + 2 * h * kv + e * h + 3 * e * h * i + 2 * h
    hellora = count_from_shapes(shapes, AdapterConfig(r=32), hot_k=2)
    per_layer = 32 * ((h + h) * 2 + 2 * (h + kv)) + 32 * (h + e) + 2 * 3 * 32 * (h + i)  # attention, router, experts
    assert hellora["trainable"] == 32 * per_layer


def test_a_k_beyond_the_experts_is_refused_as_on_the_meta_model():
    for count in (parameter_report, meta_parameter_report):
        with pytest.raises(HelloraError, match=r"k: number of hot experts must be an integer in \[1, 8\], got 9"):
            count("mixtral-8x7b", count_request("hellora"), k=9)


def test_k_is_ignored_outside_hellora_on_both_paths():
    for count in (parameter_report, meta_parameter_report):
        assert count("mixtral-8x7b", count_request("lora"), k=0)["k"] == 8  # every expert; k is hellora's


def test_lori_s_shares_add_up_to_the_kept_entries():
    report = parameter_report("deepseek-moe-16b", count_request("hellora", variant="lori_s", lori_density=0.37))
    assert sum(report["by_role"].values()) == report["trainable"]


def test_families_without_a_shape_rule_are_refused():
    with pytest.raises(HelloraError, match="model_type 'gpt_oss'"):
        model_shapes({"model_type": "gpt_oss", "hidden_size": 8, "num_hidden_layers": 1, "vocab_size": 10})
    with pytest.raises(HelloraError, match="mlp_only_layers"):
        model_shapes({**PRESETS["qwen3-30b-a3b"].config, "mlp_only_layers": [0]})
    with pytest.raises(HelloraError, match="attention_bias"):
        model_shapes({**PRESETS["mixtral-8x7b"].config, "attention_bias": True})
    with pytest.raises(HelloraError, match="no MoE layer"):
        model_shapes({**PRESETS["deepseek-moe-16b"].config, "first_k_dense_replace": 99})


def test_params_on_a_preset_imports_neither_torch_nor_transformers():
    code = ("import json, sys\nfrom hellora.cli import main\n"
            "main(['params', '--model', 'deepseek-moe-16b', '--gpus', '2', '--fsdp', '--json'])\n"
            "print(json.dumps(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    report_text, loaded = out.rsplit("\n", 2)[0], json.loads(out.rsplit("\n", 2)[1])
    assert loaded == []
    assert json.loads(report_text)["trainable"] == parameter_report("deepseek-moe-16b")["trainable"]
