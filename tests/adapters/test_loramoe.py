"""LoRAMoE on MoE backbones: mixture math against explicit loops, where it attaches, training, the localized
balancing loss, save/load, and the refusals to merge or export to PEFT."""

import pytest
import torch

from hellora.adapters import AdapterConfig, adapter_layers, attach_adapters, merge_adapters
from hellora.adapters.accounting import count_parameters
from hellora.adapters.experts import HotExpertsLoRA
from hellora.adapters.export import export_merged, export_peft
from hellora.adapters.io import load_adapter, save_adapter
from hellora.adapters.loramoe import ExpertLoRAMoEWeights, LoRAMoELinear, loramoe_balance_loss
from hellora.models.families import describe_moe_model
from hellora.models.tiny import tiny_model
from hellora.utils.errors import HelloraError
from tests.helpers import base_weight, loop_experts, mixture, tiny_deepseek_layout

IDS = torch.randint(3, 128, (2, 12), generator=torch.Generator().manual_seed(0))
CFG = dict(method="loramoe", r=4, alpha=8, loramoe_experts=3)


def test_linear_mixture_matches_explicit_sum_over_lora_experts():
    base = torch.nn.Linear(12, 10)
    layer = LoRAMoELinear(base, 4, 8, role="dense", num_experts=3, init="random",
                          generator=torch.Generator().manual_seed(0))
    assert layer.lora_A.shape == (3, 4, 12) and layer.lora_B.shape == (3, 10, 4) and layer.lora_router.shape == (3, 12)
    x1 = torch.randn(2, 5, 12, requires_grad=True)
    x2 = x1.detach().clone().requires_grad_()
    y = layer(x1)
    ref = torch.stack([torch.stack([base(v) + mixture(v, layer.lora_A, layer.lora_B, layer.lora_router, layer.scale)
                                    for v in row]) for row in x2])
    torch.testing.assert_close(y, ref, rtol=1e-5, atol=1e-6)
    params = [layer.lora_A, layer.lora_B, layer.lora_router]
    grad = torch.randn_like(y)
    for a, b in zip(torch.autograd.grad(y, params + [x1], grad), torch.autograd.grad(ref, params + [x2], grad)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("family", ["olmoe", "gpt_oss"])
def test_fused_expert_mixture_matches_per_expert_loop(family):
    model = tiny_model(family)
    moe = describe_moe_model(model).moe_layers[0]
    experts = model.get_submodule(moe.experts_path)
    hot = list(range(8))
    wrapper = HotExpertsLoRA(experts, moe.layout, hot, 4, 8, init="random", generator=torch.Generator().manual_seed(1),
                             weights_cls=lambda *a, **k: ExpertLoRAMoEWeights(*a, num_experts=3, **k))
    g = torch.Generator().manual_seed(2)
    x = torch.randn(20, 32, generator=g)
    idx = torch.stack([torch.randperm(8, generator=g)[:2] for _ in range(20)])
    w = torch.rand(20, 2, generator=g)

    def project(e, part, v):
        p = wrapper.part_weights(part)
        return base_weight(experts, moe.layout, e, part) @ v + mixture(v, p.lora_A[e], p.lora_B[e], p.lora_router[e],
                                                                       wrapper.scale)

    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    out = wrapper(x1, idx, w)
    ref = loop_experts(experts, moe.layout, x2, idx, w, project)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    params = [getattr(wrapper.part_weights(p), n) for p in ("gate", "up", "down")
              for n in ("lora_A", "lora_B", "lora_router")]
    grad = torch.randn_like(out)
    for a, b in zip(torch.autograd.grad(out, params + [x1], grad), torch.autograd.grad(ref, params + [x2], grad)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("family, roles", [("olmoe", {"experts"}), ("deepseek_v3", {"experts", "shared", "dense"})])
def test_attaches_to_expert_ffns_only(family, roles):
    model = attach_adapters(tiny_model(family), AdapterConfig(**CFG))
    layers = adapter_layers(model)
    assert {l.role for l in layers.values()} == roles  # no attention, no router adapters
    fused = [l for l in layers.values() if isinstance(l, HotExpertsLoRA)]
    assert fused and all(l.hot_experts == list(range(8)) for l in fused)
    assert all(isinstance(l.lora_down, ExpertLoRAMoEWeights) for l in fused)


def test_modulelist_experts_every_expert_linear_gets_a_mixture():
    model = attach_adapters(tiny_deepseek_layout(), AdapterConfig(**CFG))
    layers = adapter_layers(model)
    assert all(isinstance(l, LoRAMoELinear) for l in layers.values())
    experts = [p for p, l in layers.items() if l.role == "experts"]
    assert len(experts) == 2 * 8 * 3  # 2 MoE layers, every routed expert, gate/up/down
    assert {l.role for l in layers.values()} == {"experts", "shared", "dense"}


def test_parameter_count_is_n_pairs_plus_router_per_expert_linear():
    model = attach_adapters(tiny_model("olmoe"), AdapterConfig(**CFG))
    h, i, n, r = 32, 16, 3, 4
    per_expert = sum(n * r * (fin + fout) + n * fin for fin, fout in ((h, i), (h, i), (i, h)))
    assert count_parameters(model)["trainable"] == 2 * 8 * per_expert


@pytest.mark.slow
@pytest.mark.parametrize("family", ["olmoe", "deepseek_layout"])
def test_training_lowers_the_loss_and_leaves_the_base_alone(family):
    model = tiny_deepseek_layout() if family == "deepseek_layout" else tiny_model(family)
    base_state = {k: v.clone() for k, v in model.state_dict().items()}
    attach_adapters(model, AdapterConfig(**CFG))
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    with torch.no_grad():
        start = model(IDS, labels=IDS).loss.item()
    model.train()
    for _ in range(4):
        loss = model(IDS, labels=IDS).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        assert model(IDS, labels=IDS).loss.item() < start
    now = model.state_dict()
    for key, value in base_state.items():
        ours = next(k for k in now if k.replace(".base_layer", "") == key)
        assert torch.equal(now[ours], value), key


def test_balance_loss_is_loramoes_cv_squared_and_off_in_eval():
    layer = LoRAMoELinear(torch.nn.Linear(12, 10), 4, 8, role="dense", num_experts=4, init="random",
                          generator=torch.Generator().manual_seed(0))
    holder = torch.nn.ModuleDict({"l": layer})
    x = torch.randn(7, 12)
    with torch.no_grad():
        layer.eval()
        layer(x)
    assert loramoe_balance_loss(holder, delta=0.1).item() == 0.0
    layer.train()
    layer(x)
    gates = torch.softmax(x @ layer.lora_router.t(), dim=-1).sum(0)
    z = gates * torch.tensor([1.1, 1.1, 0.9, 0.9])
    expected = z.var() / z.mean() ** 2
    loss = loramoe_balance_loss(holder, delta=0.1)
    torch.testing.assert_close(loss, expected, rtol=1e-5, atol=1e-7)
    loss.backward()
    assert layer.lora_router.grad.abs().sum() > 0


def test_balance_loss_over_a_model_averages_every_adapted_linear():
    model = attach_adapters(tiny_model("olmoe"), AdapterConfig(**CFG, init="random"))
    model.train()
    model(IDS, labels=IDS)
    loss = loramoe_balance_loss(model)
    records = [q for m in model.modules() for q in getattr(m, "loramoe_importance", [])]
    assert len(records) > 3 * 2  # per (layer, projection, expert with tokens)
    assert loss.item() > 0
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for n, p in model.named_parameters()
               if n.endswith("lora_router"))


def test_save_load_round_trip_and_merge_refusals(tmp_path):
    model = attach_adapters(tiny_model("olmoe"), AdapterConfig(**CFG, init="random"))
    with torch.no_grad():
        ours = model(IDS).logits
    save_adapter(model, tmp_path / "adapter")
    loaded = load_adapter(tiny_model("olmoe"), tmp_path / "adapter")
    with torch.no_grad():
        assert torch.equal(loaded(IDS).logits, ours)
    with pytest.raises(HelloraError, match="cannot be folded"):
        export_merged(loaded, tmp_path / "merged")
    assert not (tmp_path / "merged").exists()
    with pytest.raises(HelloraError, match="PEFT cannot express LoRAMoE"):
        export_peft(loaded, tmp_path / "peft")
    with pytest.raises(HelloraError, match="cannot be folded"):
        merge_adapters(loaded)
    with torch.no_grad():
        assert torch.equal(loaded(IDS).logits, ours)  # nothing was half-merged
    assert adapter_layers(loaded)


def test_config_refusals():
    with pytest.raises(HelloraError, match="adapter.variant"):
        AdapterConfig(method="loramoe", variant="dora")
    with pytest.raises(HelloraError, match="adapter.router"):
        AdapterConfig(method="loramoe", router=True)
    with pytest.raises(HelloraError, match="adapter.loramoe_experts"):
        AdapterConfig(method="loramoe", loramoe_experts=0)
