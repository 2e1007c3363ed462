"""The memory plan of quantized experts (`hellora params --cold-experts`) equals the bytes a loaded model holds.

The plan counts from config values alone (`quant/sizes.py`, no torch); here reduced-shape OLMoE, Mixtral and
Qwen3-MoE presets are built in bf16, their experts stored as the plan says, and the parameter bytes plus the bytes
of the quantized stores' buffers (codes, scales, tables, kept hot experts) are summed: they must match the plan's
frozen weights to the byte.
"""

import json

import pytest

from hellora.cli import main
from hellora.memory_plan import ExpertStorage, plan_memory, shape_sizes
from hellora.models.loading import load_model
from hellora.models.presets import PRESETS
from hellora.models.shapes import model_shapes
from hellora.quant import QuantizedExpertWeight, quantize_experts
from hellora.utils.errors import HelloraError
from tests.adapters.test_shape_count import REDUCED

PRESETS_HERE = ["olmoe-1b-7b", "mixtral-8x7b", "qwen3-30b-a3b"]
STORAGES = [("int8", "keep"), ("nf4", "keep"), ("nf4", "nf4"), ("keep", "int8")]


def measured_bytes(model) -> int:
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    stores = sum(m.stored_bytes() for m in model.modules() if isinstance(m, QuantizedExpertWeight))
    return params + stores


@pytest.mark.parametrize("preset", PRESETS_HERE)
def test_planned_frozen_bytes_equal_the_loaded_model(preset):
    overrides = REDUCED[preset][1]
    shapes = model_shapes({**PRESETS[preset].config, **overrides})
    k = 2
    for cold, hot in STORAGES:
        model = load_model(preset, dtype="bfloat16", overrides=overrides, seed=0)
        model.requires_grad_(False)
        keep_bytes = measured_bytes(model)
        hot_sets = {layer: list(range(k)) for layer in shapes.moe_layer_indices}
        quantize_experts(model, hot_sets, cold=cold, hot=hot)
        plan = plan_memory(shape_sizes(shapes, 0), gpus=1, fsdp=False, experts=ExpertStorage(cold, hot, k))
        assert measured_bytes(model) == plan.frozen, (cold, hot)
        assert plan.frozen < keep_bytes == plan_memory(shape_sizes(shapes, 0), gpus=1, fsdp=False).frozen


def _plan(*args):
    import io
    from contextlib import redirect_stdout

    buffer = io.StringIO()
    with redirect_stdout(buffer):
        assert main(["params", "--model", "mixtral-8x7b", "--method", "hellora", "--gpus", "1", "--json", *args]) == 0
    return json.loads(buffer.getvalue())["memory"]


def test_mixtral_hellora_with_nf4_cold_experts_fits_one_80gb_gpu():
    keep, nf4, int8 = _plan(), _plan("--cold-experts", "nf4"), _plan("--cold-experts", "int8")
    assert keep["total_checkpointed"] > 80e9 > nf4["total_checkpointed"]
    assert nf4["frozen"] < int8["frozen"] < keep["frozen"]
    assert nf4["experts"] == {"cold_experts": "nf4", "hot_experts": "keep", "hot_per_layer": 2}
    # the adapters, their gradients and optimizer state do not change with the base's storage
    assert all(nf4[key] == keep[key] for key in ("adapters", "gradients", "optimizer", "activations"))


def test_quantized_plan_refuses_fsdp_and_full_finetuning(capsys):
    assert main(["params", "--model", "mixtral-8x7b", "--gpus", "2", "--fsdp", "--cold-experts", "nf4"]) != 0
    assert "--fsdp: quantized experts are not sharded by FSDP here" in capsys.readouterr().err
    assert main(["params", "--model", "mixtral-8x7b", "--method", "fft", "--gpus", "1", "--cold-experts", "nf4"]) != 0
    assert "--cold-experts: full fine-tuning trains every expert, so none can stay quantized" in capsys.readouterr().err
    with pytest.raises(HelloraError, match="nf4: an expert weight of 6 entries"):
        from hellora.quant.sizes import nf4_blocks

        nf4_blocks(6)
