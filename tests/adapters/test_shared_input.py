"""Attention projections that read one input share one LoRA A product: same outputs and gradients as separate
products, reuse only for the very same input tensor, fewer A products, no change to weights or files."""

import copy
import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hellora.adapters import AdapterConfig, adapter_layers, attach_adapters, disable_adapters
from hellora.adapters.io import load_adapter, save_adapter
from hellora.adapters.linear import LoRALinear
from hellora.adapters.shared_input import SharedInputGroup, group_shared_inputs
from hellora.models.tiny import tiny_model
from hellora.utils.errors import HelloraError
from tests.conftest import FUSED_FAMILIES
from tests.helpers import tiny_deepseek_layout

IDS = torch.randint(3, 128, (2, 12), generator=torch.Generator().manual_seed(0))
R = 4


def _attach(family="olmoe", fuse=True, **kw):
    model = tiny_deepseek_layout() if family == "deepseek_layout" else tiny_model(family)
    kw = {"method": "lora", "init": "random", "r": R, "alpha": 8, **kw}
    return attach_adapters(model, AdapterConfig(fuse_shared_inputs=fuse, **kw))


def _groups(model) -> list[SharedInputGroup]:
    groups = {id(l.shared_input): l.shared_input for l in adapter_layers(model).values()
              if getattr(l, "shared_input", None) is not None}
    return list(groups.values())


def _loss_and_grads(model):
    model.train()
    out = model(IDS, labels=IDS)
    out.loss.backward()
    return out.logits.detach(), {n: p.grad for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("family", FUSED_FAMILIES + ["deepseek_layout"])
def test_fused_logits_and_adapter_grads_equal_unfused(family):
    fused, plain = _attach(family), _attach(family, fuse=False)
    assert _groups(fused) and not _groups(plain)
    logits, grads = _loss_and_grads(fused)
    ref_logits, ref_grads = _loss_and_grads(plain)
    torch.testing.assert_close(logits, ref_logits, rtol=1e-5, atol=1e-5)
    assert grads.keys() == ref_grads.keys()
    for name, ref in ref_grads.items():
        if ref is None:  # an expert (ModuleList layout) no token was routed to
            assert grads[name] is None and ".experts." in name, name
            continue
        assert ref.abs().max() > 0 or ".experts." in name, name
        torch.testing.assert_close(grads[name], ref, rtol=1e-5, atol=1e-6, msg=name)
    for group in _groups(fused):  # every member but the first took its columns; nothing is left behind
        assert group.shared_products == 1 and group.reused == len(group.members) - 1
        assert group._product is None


@pytest.mark.parametrize("family, names", [("olmoe", {"q_proj", "k_proj", "v_proj"}),
                                           ("deepseek_v2", {"q_proj", "kv_a_proj_with_mqa"}),
                                           ("deepseek_v3", {"q_a_proj", "kv_a_proj_with_mqa"})])
def test_attention_grads_of_a_and_x_equal_separate_products_in_float64(family, names):
    model = _attach(family)
    attention = model.model.layers[0].self_attn.double()
    [group] = _groups(attention)
    assert {n for n, m in attention.named_children() if m in group.members} == names
    x = torch.randn(2, 12, 32, dtype=torch.float64, requires_grad=True)
    cos_sin = model.model.rotary_emb(x, torch.arange(12).unsqueeze(0))
    weights = [p for m in group.members for p in (m.lora_A, m.lora_B)]

    def grads():
        out = attention(x, position_embeddings=cos_sin, attention_mask=None)[0]
        return [out, *torch.autograd.grad((out * torch.linspace(-1, 1, out.shape[-1], dtype=out.dtype)).sum(),
                                          [x, *weights])]

    fused = grads()
    assert group.reused == len(names) - 1
    for m in group.members:
        m.shared_input = None
    for got, ref in zip(fused, grads()):
        assert ref.abs().max() > 0
        torch.testing.assert_close(got, ref, rtol=1e-12, atol=1e-12)


class _Attention(nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        for name, out in (("q_proj", 8), ("k_proj", 4), ("v_proj", 4), ("o_proj", 16)):
            setattr(self, name, LoRALinear(nn.Linear(16 if name != "o_proj" else 8, out), R, 8, role="attention",
                                           init="random", generator=g))


def _attention_group():
    attention = _Attention()
    [group] = group_shared_inputs(attention)
    return attention, group


def _separate(layer, x):
    return layer.base_layer(x) + F.linear(F.linear(x, layer.lora_A), layer.lora_B) * layer.scale


def test_group_holds_the_projections_that_read_one_input():
    attention, group = _attention_group()
    assert group.members == [attention.q_proj, attention.k_proj, attention.v_proj]
    assert attention.o_proj.shared_input is None


def test_only_the_same_tensor_object_at_the_same_version_reuses():
    attention, group = _attention_group()
    q, k, v = attention.q_proj, attention.k_proj, attention.v_proj
    x = torch.randn(16, 16)
    torch.testing.assert_close(q(x), _separate(q, x))
    assert group.shared_products == 1 and group._product is not None
    same_values = x.clone()  # equal values, another object: computes its own product
    torch.testing.assert_close(k(same_values), _separate(k, same_values))
    assert group.reused == 0 and group.shared_products == 2  # ... and replaces the held product
    q(x)
    x.mul_(2)  # in place after the product was computed
    torch.testing.assert_close(v(x), _separate(v, x))
    assert group.reused == 0 and group.shared_products == 4
    torch.testing.assert_close(k(x), _separate(k, x))
    assert group.reused == 1
    torch.testing.assert_close(k(x), _separate(k, x))  # called twice: its piece was taken, recomputes alone
    assert group.reused == 1 and group.shared_products == 4


def test_inputs_of_few_rows_compute_their_own_products():
    attention, group = _attention_group()  # 3 members of r = 4: concatenating A copies 12 x 16 values
    for x in (torch.randn(1, 1, 16), torch.randn(2, 6, 16)):  # decoding one token; 2 x 12 rows read == 2 x 12
        for layer in group.members:
            torch.testing.assert_close(layer(x), _separate(layer, x))
    assert group.shared_products == 0 and group._product is None
    x = torch.randn(13, 16)
    for layer in group.members:
        torch.testing.assert_close(layer(x), _separate(layer, x))
    assert group.shared_products == 1 and group.reused == 2


def test_checkpoint_recomputation_inside_backward_never_takes_a_forward_product():
    attention, group = _attention_group()
    q, k = attention.q_proj, attention.k_proj
    x = torch.randn(16, 16, requires_grad=True)

    def qk(x):  # v is never called: its columns of the forward's product stay held
        return (q(x) * torch.arange(8)).sum() + k(x).sum()

    params = [x, q.lora_A, k.lora_A, q.lora_B, k.lora_B]
    out = torch.utils.checkpoint.checkpoint(qk, x, use_reentrant=False)
    got = torch.autograd.grad(out, params)
    assert group.shared_products == 2  # the recomputation, on the same x, computed its own
    for m in group.members:
        m.shared_input = None
    for g, ref in zip(got, torch.autograd.grad(qk(x), params)):
        torch.testing.assert_close(g, ref)


def test_changed_a_grad_mode_or_disabled_member_does_not_reuse():
    attention, group = _attention_group()
    q, k, v = attention.q_proj, attention.k_proj, attention.v_proj
    x = torch.randn(16, 16)
    with torch.no_grad():
        q(x)
    out = k(x)  # a product computed without autograd is not reused with autograd on
    assert group.reused == 0 and out.grad_fn is not None
    assert torch.autograd.grad(out.sum(), k.lora_A)[0].abs().max() > 0
    x = torch.randn(16, 16)
    q(x)
    with torch.no_grad():
        k.lora_A.add_(1.0)  # e.g. an optimizer step between two calls
    torch.testing.assert_close(k(x), _separate(k, x))
    assert group.reused == 0
    v.adapter_enabled = False
    products = group.shared_products
    torch.testing.assert_close(v(x), v.base_layer(x))  # disabled: no adapter product at all
    assert group.shared_products == products
    q(torch.randn(32, 16))
    assert set(group._product.pieces) == {k}  # the disabled member gets no columns
    with torch.inference_mode():  # inference tensors have no version counter: every member computes its own
        y = torch.randn(16, 16)
        torch.testing.assert_close(q(y), _separate(q, y))
        torch.testing.assert_close(k(y), _separate(k, y))
    assert group.reused == 0 and group.shared_products == products + 1


def test_product_is_released_after_the_last_member_and_never_holds_x():
    attention, group = _attention_group()
    q, k, v = attention.q_proj, attention.k_proj, attention.v_proj
    x = torch.randn(16, 16, requires_grad=True)
    q(x), k(x)
    assert set(group._product.pieces) == {v}  # v not called yet (a wrong guess would stop here): v's columns wait
    copy.deepcopy(attention)  # a held product (autograd graph, weak reference) is not copied
    v(x)
    assert group._product is None
    with torch.no_grad():
        q(torch.randn(16, 16))  # without autograd nothing but the group's weak reference points at this input
    assert group._product is not None and group._product.x() is None
    y = torch.randn(16, 16)  # may reuse the freed memory: no match all the same
    torch.testing.assert_close(k(y), _separate(k, y))
    assert group.reused == 2


def _count_a_products(model, monkeypatch, r=3) -> list[int]:
    """Rows of every F.linear weight that is a stack of 1-3 rank-r LoRA A matrices over the hidden size (32);
    r = 3 matches no base weight of the tiny models."""
    rows = []
    linear = F.linear

    def counting(x, weight, bias=None):
        if weight.shape[-1] == 32 and weight.shape[0] in (r, 2 * r, 3 * r):
            rows.append(weight.shape[0])
        return linear(x, weight, bias)

    monkeypatch.setattr(F, "linear", counting)
    with torch.no_grad():
        model(IDS)
    monkeypatch.setattr(F, "linear", linear)
    return rows


def test_one_a_product_per_attention_instead_of_three(monkeypatch):
    fused = _count_a_products(_attach("olmoe", r=3), monkeypatch)
    plain = _count_a_products(_attach("olmoe", fuse=False, r=3), monkeypatch)
    layers = 2
    assert fused.count(9) == layers and plain.count(9) == 0
    assert plain.count(3) - fused.count(3) == 3 * layers  # q, k, v: three skinny products became one
    assert len(plain) - len(fused) == 2 * layers
    mla = _count_a_products(_attach("deepseek_v3", r=3), monkeypatch)
    assert mla.count(6) == 3  # q_a_proj + kv_a_proj_with_mqa in each of the 3 layers


def test_gradient_checkpointing_recomputes_and_matches(monkeypatch):
    models = {}
    for fuse in (True, False):
        model = _attach("olmoe", fuse=fuse)
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        models[fuse] = _loss_and_grads(model), model
    (logits, grads), model = models[True]
    (ref_logits, ref_grads), _ = models[False]
    torch.testing.assert_close(logits, ref_logits, rtol=1e-5, atol=1e-5)
    for name, ref in ref_grads.items():
        torch.testing.assert_close(grads[name], ref, rtol=1e-5, atol=1e-6, msg=name)
    for group in _groups(model):  # the forward's product, then the recomputation's (new tensors) in backward
        assert group.shared_products == 2 and group.reused == 4 and group._product is None


def test_no_grad_and_disabled_adapters():
    base = tiny_model("olmoe")
    with torch.no_grad():
        base_logits = base(IDS).logits
    fused, plain = _attach("olmoe"), _attach("olmoe", fuse=False)
    with torch.no_grad():
        torch.testing.assert_close(fused(IDS).logits, plain(IDS).logits, rtol=1e-5, atol=1e-5)
        assert all(g._product is None for g in _groups(fused))
        products = [g.shared_products for g in _groups(fused)]
        with disable_adapters(fused):
            assert torch.equal(fused(IDS).logits, base_logits)
        assert [g.shared_products for g in _groups(fused)] == products


@pytest.mark.parametrize("options, grouped", [
    ({}, True), ({"variant": "lori_d"}, True), ({"dropout": 0.1}, False), ({"variant": "dora"}, False),
    ({"fuse_shared_inputs": False}, False), ({"method": "loramoe", "init": "default"}, False),
])
def test_only_plain_lora_projections_without_dropout_are_grouped(options, grouped):
    fuse = options.pop("fuse_shared_inputs", True)
    model = _attach("olmoe", fuse=fuse, **options)
    assert bool(_groups(model)) == grouped


def test_lori_d_fused_grads_equal_unfused():
    fused, plain = _attach("olmoe", variant="lori_d"), _attach("olmoe", fuse=False, variant="lori_d")
    (logits, grads), (ref_logits, ref_grads) = _loss_and_grads(fused), _loss_and_grads(plain)
    assert grads.keys() == ref_grads.keys() and all(n.endswith("lora_B") for n in grads)
    torch.testing.assert_close(logits, ref_logits, rtol=1e-5, atol=1e-5)
    for name, ref in ref_grads.items():
        torch.testing.assert_close(grads[name], ref, rtol=1e-5, atol=1e-6, msg=name)
    assert all(g.reused == 2 for g in _groups(fused))


def test_switch_round_trips_and_old_adapter_files_load(tmp_path):
    assert AdapterConfig.from_dict(AdapterConfig(fuse_shared_inputs=False).to_dict()).fuse_shared_inputs is False
    with pytest.raises(HelloraError, match="adapter.fuse_shared_inputs"):
        AdapterConfig(fuse_shared_inputs="yes")
    fused, plain = _attach("olmoe"), _attach("olmoe", fuse=False)
    assert fused.state_dict().keys() == plain.state_dict().keys()
    save_adapter(fused, tmp_path / "a", base_model="tiny")
    record_path = tmp_path / "a" / "hellora_adapter.json"
    record = json.loads(record_path.read_text())
    del record["adapter"]["fuse_shared_inputs"]  # an adapter saved before the switch existed
    record_path.write_text(json.dumps(record))
    loaded = load_adapter(tiny_model("olmoe"), tmp_path / "a")
    assert loaded.hellora_adapter.config.fuse_shared_inputs is True and _groups(loaded)
    with torch.no_grad():
        torch.testing.assert_close(loaded(IDS).logits, plain(IDS).logits, rtol=1e-5, atol=1e-5)
