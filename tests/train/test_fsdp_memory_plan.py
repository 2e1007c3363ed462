"""The per-GPU memory plan against numbers worked out by hand, and `hellora params --gpus` on Mixtral-8x7B."""

import json

import pytest

from hellora.cli import main
from hellora.memory_plan import ModelSizes, model_sizes, plan_memory
from hellora.utils.errors import HelloraError

SIZES = ModelSizes(base=1000, trainable=10, largest_layer=100, root=200, hidden=4, layers=2, vocab=8,
                   expert_intermediate=6, top_k=2)


def test_plan_on_hand_computed_numbers():
    plan = plan_memory(SIZES, gpus=2, fsdp=True, batch=3, seq=5)
    assert plan.frozen == 2 * (1000 / 2 + 200 + 2 * 100)          # a half, the root unit, two gathered layers
    assert (plan.adapters, plan.gradients, plan.optimizer) == (40, 40, 80)
    # 15 tokens; per token and layer 10*4 + 2*(2*4 + 3*6) = 92 values of 2 bytes; logits 8 bytes x 8 per token
    assert plan.activations == 2 * 15 * 2 * 92 + 8 * 8 * 15
    assert plan.activations_checkpointed == 2 * 15 * (2 * 4 + 92) + 8 * 8 * 15
    assert plan.total == 1800 + 40 + 40 + 80 + 6480
    assert plan_memory(SIZES, gpus=2, fsdp=False, batch=3, seq=5).frozen == 2000   # DDP: every GPU holds all
    assert plan_memory(SIZES, gpus=1, fsdp=True, batch=3, seq=5).frozen == 2000    # nothing to shard
    with pytest.raises(HelloraError, match="--gpus"):
        plan_memory(SIZES, gpus=0, fsdp=True)


def test_sizes_of_mixtral_from_its_config():
    h, i, e, v, kv = 4096, 14336, 8, 32000, 1024
    layer = 2 * h * h + 2 * h * kv + e * h + 3 * e * h * i + 2 * h  # attention, router, experts, two norms
    sizes = model_sizes("mixtral-8x7b", trainable=123)
    assert sizes.largest_layer == layer and sizes.layers == 32 and sizes.root == 2 * v * h + h
    assert sizes.base == 32 * layer + 2 * v * h + h
    assert (sizes.hidden, sizes.vocab, sizes.expert_intermediate, sizes.top_k) == (h, v, i, 2)


def test_params_command_prints_the_plan(capsys):
    assert main(["params", "--model", "mixtral-8x7b", "--k", "2", "--gpus", "2", "--fsdp", "--batch", "1",
                 "--seq", "1024", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    memory, trainable = out["memory"], out["trainable"]
    sizes = model_sizes("mixtral-8x7b", trainable)
    assert memory["frozen"] == 2 * (sizes.base / 2 + sizes.root + 2 * sizes.largest_layer)
    assert memory["optimizer"] == 8 * trainable and memory["gpus"] == 2 and memory["fsdp"] is True
    assert main(["params", "--model", "mixtral-8x7b", "--k", "2", "--gpus", "1"]) == 0
    text = capsys.readouterr().out
    assert "frozen weights" in text and "93.4" in text  # 46.7 B weights in bf16 on one GPU
