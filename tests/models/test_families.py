import pytest
import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM

from hellora.models.families import describe_moe_model
from hellora.models.tiny import tiny_model
from hellora.utils.errors import HelloraError
from tests.conftest import FUSED_FAMILIES
from tests.helpers import tiny_deepseek_layout


@pytest.mark.parametrize("family", FUSED_FAMILIES)
def test_fused_families_are_described(family):
    model = tiny_model(family)
    spec = describe_moe_model(model)
    assert spec.num_experts == 8 and spec.top_k == 2
    for moe in spec.moe_layers:
        assert moe.kind == "fused"
        experts = model.get_submodule(moe.experts_path)
        assert experts.gate_up_proj.dim() == 3
        router = model.get_submodule(moe.router_path)
        assert router.weight.shape == (8, 32)
    for layer in spec.layers:
        assert layer.attention_path.endswith("self_attn")


def test_shared_experts_and_dense_layers_are_found():
    spec = describe_moe_model(tiny_model("deepseek_v3"))
    assert [l.moe is None for l in spec.layers] == [True, False, False]
    assert spec.layers[0].dense_mlp_path == "model.layers.0.mlp"
    assert spec.moe_layers[0].shared_paths == ["model.layers.1.mlp.shared_experts"]
    assert describe_moe_model(tiny_model("qwen2_moe")).moe_layers[0].shared_paths == ["model.layers.1.mlp.shared_expert"]
    assert describe_moe_model(tiny_model("granitemoeshared")).moe_layers[0].shared_paths == ["model.layers.0.shared_mlp"]


def test_gpt_oss_layout_is_transposed_interleaved_with_bias():
    layout = describe_moe_model(tiny_model("gpt_oss")).moe_layers[0].layout
    assert (layout.transposed, layout.interleaved, layout.has_bias) == (True, True, True)
    assert (layout.hidden_size, layout.intermediate_size) == (32, 16)
    olmoe = describe_moe_model(tiny_model("olmoe")).moe_layers[0].layout
    assert (olmoe.transposed, olmoe.interleaved, olmoe.has_bias) == (False, False, False)


def test_modulelist_layout_of_remote_code_models():
    spec = describe_moe_model(tiny_deepseek_layout())
    assert spec.layers[0].dense_mlp_path == "model.layers.0.mlp"
    moe = spec.moe_layers[0]
    assert (moe.kind, moe.num_experts, moe.top_k) == ("modulelist", 8, 2)
    assert moe.router_path == "model.layers.1.mlp.gate"
    assert moe.shared_paths == ["model.layers.1.mlp.shared_experts"]


class _Expert(nn.Module):
    def __init__(self):
        super().__init__()
        self.gate_proj, self.up_proj, self.down_proj = nn.Linear(8, 4), nn.Linear(8, 4), nn.Linear(4, 8)


class _Block(nn.Module):
    """A foreign look-alike of remote-code MoE blocks: other class names, same attribute layout."""

    def __init__(self):
        super().__init__()
        self.experts = nn.ModuleList(_Expert() for _ in range(4))
        self.gate = nn.Module()
        self.gate.weight = nn.Parameter(torch.zeros(4, 8))
        self.gate.top_k = 3


class _Layer(nn.Module):
    def __init__(self):
        super().__init__()
        self.self_attn = nn.Linear(8, 8)
        self.mlp = _Block()


class _Toy(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([_Layer(), _Layer()])


def test_foreign_lookalike_class_is_described():
    spec = describe_moe_model(_Toy())
    assert [m.num_experts for m in spec.moe_layers] == [4, 4]
    assert spec.top_k == 3 and spec.moe_layers[1].experts_path == "layers.1.mlp.experts"


def test_dense_model_is_refused_with_what_was_found():
    config = AutoConfig.for_model("qwen2", vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                  num_attention_heads=2, num_key_value_heads=2)
    model = AutoModelForCausalLM.from_config(config)
    with pytest.raises(HelloraError, match=r"no Mixture-of-Experts layers.*Qwen2MLP"):
        describe_moe_model(model)


def test_unknown_expert_layout_is_refused():
    toy = _Toy()
    toy.layers[0].mlp.experts = nn.Linear(8, 8)
    with pytest.raises(HelloraError, match="neither fused"):
        describe_moe_model(toy)
