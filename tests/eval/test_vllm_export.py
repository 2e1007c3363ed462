"""`hellora export --format vllm`: the per-expert LoRA layout vLLM's MoE-LoRA loads natively.

Each exported pair, times alpha/r, is held to the update the merged export folds into that weight (merged minus
base weights, an independent path through hellora's merge), for every adapted module, every expert of every layer
(cold experts: zero pairs, zero update). Whether vLLM serves it is the GPU step of scripts/device/gpu_session.sh.
"""

import copy
import json

import pytest
import torch
from safetensors.torch import load_file

from hellora.adapters import AdapterConfig, attach_adapters
from hellora.adapters.export import export_merged
from hellora.adapters.export_vllm import expert_weight_names, export_vllm
from hellora.models.tiny import tiny_model
from hellora.utils.errors import HelloraError
from tests.helpers import first_k_placement

HOT = (1, 5)


def _adapted(family, **config):
    model = tiny_model(family)
    attach_adapters(model, AdapterConfig(**{"init": "random", "r": 4, "alpha": 8, "targets": "all", **config}),
                    first_k_placement(model, HOT))
    with torch.no_grad():  # random init leaves B at zero for some layers: make every update non-zero
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.copy_(torch.randn_like(p) * 0.1)
    return model


@pytest.mark.parametrize("family", ["olmoe", "mixtral", "qwen3_moe"])
def test_every_pair_is_the_update_the_merged_export_folds_in(family, tmp_path):
    model = _adapted(family)
    base = {k: v.clone() for k, v in tiny_model(family).state_dict().items()}
    export_vllm(model, tmp_path / "vllm", base_model="tiny")
    merged_model = copy.deepcopy(model)
    export_merged(merged_model, tmp_path / "merged")  # folds the updates into merged_model's own weights
    merged_state = merged_model.state_dict()
    config = json.loads((tmp_path / "vllm" / "adapter_config.json").read_text())
    tensors = load_file(str(tmp_path / "vllm" / "adapter_model.safetensors"))
    scale = config["lora_alpha"] / config["r"]
    assert (config["r"], config["lora_alpha"]) == (4, 8) and "rank_pattern" not in config

    def update(key):  # (out, in) from the exported pair
        pair = f"base_model.model.{key}"
        return scale * tensors[f"{pair}.lora_B.weight"] @ tensors[f"{pair}.lora_A.weight"]

    gate, up, down = expert_weight_names(model.config.model_type)
    n_experts, _, inter = base["model.layers.0.mlp.experts.down_proj"].shape  # (E, hidden, intermediate)
    checked = 0
    for layer in range(model.config.num_hidden_layers):
        prefix = f"model.layers.{layer}"
        for key in (f"{prefix}.self_attn.q_proj", f"{prefix}.self_attn.o_proj", f"{prefix}.mlp.gate"):
            torch.testing.assert_close(update(key), merged_state[f"{key}.weight"] - base[f"{key}.weight"],
                                       rtol=1e-4, atol=1e-5)
            checked += 1
        gate_up = merged_state[f"{prefix}.mlp.experts.gate_up_proj"] - base[f"{prefix}.mlp.experts.gate_up_proj"]
        down_w = merged_state[f"{prefix}.mlp.experts.down_proj"] - base[f"{prefix}.mlp.experts.down_proj"]
        for e in range(n_experts):
            expert = f"{prefix}.mlp.experts.{e}"
            for got, want in ((update(f"{expert}.{gate}"), gate_up[e, :inter]),
                              (update(f"{expert}.{up}"), gate_up[e, inter:]),
                              (update(f"{expert}.{down}"), down_w[e])):
                torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
                assert (got.abs().sum() > 0) == (e in HOT)  # hot experts change, cold ones are zero pairs
                checked += 1
    assert checked == model.config.num_hidden_layers * (3 + 3 * n_experts)
    sidecar = json.loads((tmp_path / "vllm" / "hellora_placement.json").read_text())
    assert sidecar["serve"] == {"max_lora_rank_at_least": 4, "enable_mixed_moe_lora_format": False,
                                "is_3d_lora_weight": False}


def test_vllm_has_no_dora_loramoe_or_interleaved_experts(tmp_path):
    with pytest.raises(HelloraError, match="a LoRA folder cannot hold DoRA"):
        export_vllm(_adapted("olmoe", variant="dora"), tmp_path / "a")
    with pytest.raises(HelloraError, match="interleaves gate and up"):
        export_vllm(_adapted("gpt_oss"), tmp_path / "b")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_cli_writes_the_vllm_format_from_a_saved_adapter(tmp_path, monkeypatch):
    from hellora.adapters.io import save_adapter
    from hellora.cli import main

    base = tiny_model("olmoe")
    base.save_pretrained(tmp_path / "base")
    model = _adapted("olmoe")
    model.load_state_dict(base.state_dict(), strict=False)
    save_adapter(model, tmp_path / "adapter", base_model=str(tmp_path / "base"))
    assert main(["export", "--adapter", str(tmp_path / "adapter"), "--format", "vllm", "--out",
                 str(tmp_path / "out")]) == 0
    direct = export_vllm(model, tmp_path / "direct")
    ours, theirs = (load_file(str(d / "adapter_model.safetensors")) for d in (tmp_path / "out", direct))
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
