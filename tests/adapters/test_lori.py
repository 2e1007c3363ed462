"""LoRI-D / LoRI-S (and HELLoRI on the hot placement): what trains, the global mask, the A hand-over from the
LoRI-D run, save/load and exports."""

import pytest
import torch
from peft import PeftModel
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from hellora.adapters import AdapterConfig, adapter_layers, attach_adapters
from hellora.adapters.accounting import count_parameters
from hellora.adapters.experts import HotExpertsLoRA
from hellora.adapters.export import export_merged, export_peft
from hellora.adapters.io import load_adapter, lori_mask_from_adapter, read_lori_d, save_adapter
from hellora.adapters.lori import global_topk_masks, lori_keep_count
from hellora.models.tiny import tiny_model
from hellora.utils.errors import HelloraError
from tests.helpers import first_k_placement

IDS = torch.randint(3, 128, (2, 12), generator=torch.Generator().manual_seed(0))
HOT = (1, 5)


def _params(model):
    return dict(model.named_parameters())


def _train(model, steps=4, lr=1e-2):
    """AdamW with weight decay on the requires_grad parameters; returns (eval loss before, eval loss after)."""
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=0.1)
    with torch.no_grad():
        start = model.eval()(IDS, labels=IDS).loss.item()
    model.train()
    for _ in range(steps):
        loss = model(IDS, labels=IDS).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        end = model.eval()(IDS, labels=IDS).loss.item()
    return start, end


def _attach(method, variant, family="olmoe", **kw):
    model = tiny_model(family)
    placement = first_k_placement(model, HOT) if method == "hellora" else None
    return attach_adapters(model, AdapterConfig(method=method, variant=variant, r=4, alpha=8, **kw), placement)


@pytest.mark.parametrize("method", ["lora", "hellora"])
def test_lori_d_trains_only_b_and_never_changes_a(method):
    model = _attach(method, "lori_d")
    base_state = {k: v.clone() for k, v in model.state_dict().items() if "lora_" not in k}
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    a_names = [n for n in _params(model) if n.endswith("lora_A")]
    assert trainable and all(n.endswith("lora_B") for n in trainable)
    assert a_names and not any(_params(model)[n].requires_grad for n in a_names)
    a_before = {n: _params(model)[n].detach().clone() for n in a_names}
    b_before = {n: _params(model)[n].detach().clone() for n in trainable}
    start, end = _train(model)
    assert end < start
    assert all(torch.equal(_params(model)[n], a) for n, a in a_before.items())
    assert all(not torch.equal(_params(model)[n], b) for n, b in b_before.items() if "layers.0" in n)
    now = model.state_dict()
    for key, value in base_state.items():  # base weights, cold experts included, are untouched
        assert torch.equal(now[key], value), key
    experts = [l for l in adapter_layers(model).values() if isinstance(l, HotExpertsLoRA)]
    assert {tuple(l.hot_experts) for l in experts} == ({HOT} if method == "hellora" else {tuple(range(8))})
    b_count = sum(_params(model)[n].numel() for n in trainable)
    assert count_parameters(model)["trainable"] == b_count


def test_global_mask_uses_one_threshold_over_all_matrices():
    g = torch.Generator().manual_seed(0)
    tensors = {"small": torch.randn(40, 4, generator=g) * 0.01, "large": torch.randn(10, 4, generator=g),
               "mixed": torch.cat([torch.randn(5, 4, generator=g), torch.randn(5, 4, generator=g) * 0.01])}
    masks = global_topk_masks(tensors, 0.2)
    total = sum(t.numel() for t in tensors.values())
    assert sum(int(m.sum()) for m in masks.values()) == lori_keep_count(total, 0.2) == 48
    kept = torch.cat([tensors[n].abs()[masks[n]] for n in tensors])
    dropped = torch.cat([tensors[n].abs()[~masks[n]] for n in tensors])
    assert kept.min() >= dropped.max()
    assert masks["small"].sum() == 0 and masks["large"].float().mean() > 0.5  # not a per-matrix top-20%
    ties = global_topk_masks({"a": torch.zeros(3, 3), "b": torch.ones(2)}, 0.5)
    assert int(ties["a"].sum() + ties["b"].sum()) == lori_keep_count(11, 0.5) and ties["b"].all()


@pytest.fixture(scope="module")
def lori_d_dirs(tmp_path_factory):
    """Finished (briefly trained) LoRI-D and HELLoRI-D adapters on the tiny OLMoE."""
    dirs = {}
    for method in ("lora", "hellora"):
        model = _attach(method, "lori_d", init="random")
        _train(model, steps=2)
        dirs[method] = tmp_path_factory.mktemp(f"lori_d_{method}") / "adapter"
        save_adapter(model, dirs[method], base_model="tiny")
    return dirs


def test_mask_from_adapter_keeps_the_global_top_density(lori_d_dirs):
    tensors = load_file(str(lori_d_dirs["lora"] / "hellora_adapter.safetensors"))
    masks = lori_mask_from_adapter(lori_d_dirs["lora"], density=0.1)
    b = {n: t for n, t in tensors.items() if n.endswith("lora_B")}
    assert set(masks) == set(b) and all(masks[n].dtype == torch.bool and masks[n].shape == b[n].shape for n in b)
    assert sum(int(m.sum()) for m in masks.values()) == lori_keep_count(sum(t.numel() for t in b.values()), 0.1)
    kept = torch.cat([b[n].abs()[masks[n]] for n in b])
    dropped = torch.cat([b[n].abs()[~masks[n]] for n in b])
    assert kept.min() >= dropped.max()
    densities = {round(m.float().mean().item(), 3) for m in masks.values()}
    assert len(densities) > 1  # one global threshold, not 10% of each matrix
    assert sum(int(m.sum()) for m in lori_mask_from_adapter(lori_d_dirs["lora"], 0.3).values()) > \
        sum(int(m.sum()) for m in masks.values())


@pytest.mark.parametrize("method", ["lora", "hellora"])
def test_lori_s_trains_only_masked_b_entries_from_the_lori_d_a(method, lori_d_dirs):
    src = lori_d_dirs[method]
    model = tiny_model("olmoe")
    # no placement: HELLoRI-S takes the hot experts of its HELLoRI-D adapter
    attach_adapters(model, AdapterConfig(method=method, variant="lori_s", r=4, alpha=8, lori_from=str(src)),
                    lori_d=read_lori_d(src))
    saved = load_file(str(src / "hellora_adapter.safetensors"))
    masks = lori_mask_from_adapter(src, 0.1)
    params, buffers = _params(model), dict(model.named_buffers())
    for name, t in saved.items():
        if name.endswith("lora_A"):
            assert torch.equal(params[name], t) and not params[name].requires_grad
    for name, mask in masks.items():
        assert torch.equal(buffers[f"{name}_mask"], mask)
        assert params[name].abs().sum() == 0  # a fresh run: B starts at 0
    assert all(n.endswith("lora_B") for n, p in params.items() if p.requires_grad)
    assert count_parameters(model)["trainable"] == sum(int(m.sum()) for m in masks.values())
    if method == "hellora":
        hot = {tuple(l.hot_experts) for l in adapter_layers(model).values() if isinstance(l, HotExpertsLoRA)}
        assert hot == {HOT}
    a_before = {n: p.detach().clone() for n, p in params.items() if n.endswith("lora_A")}
    start, end = _train(model, steps=4, lr=2e-2)
    assert end < start
    assert all(torch.equal(params[n], a) for n, a in a_before.items())
    moved = 0
    for name, mask in masks.items():
        b = params[name]
        assert torch.count_nonzero(b[~mask]) == 0, name  # exactly zero outside the mask, weight decay included
        moved += int((b[mask] != 0).sum())
    assert moved > 0.5 * sum(int(m.sum()) for m in masks.values())


def test_lori_s_round_trip_saves_masks_as_safetensors_and_exports(lori_d_dirs, tmp_path):
    model = tiny_model("olmoe")
    attach_adapters(model, AdapterConfig(method="lora", variant="lori_s", r=4, alpha=8, init="random",
                                         lori_from=str(lori_d_dirs["lora"])), lori_d=read_lori_d(lori_d_dirs["lora"]))
    with torch.no_grad():
        ours = model(IDS).logits
    save_adapter(model, tmp_path / "s")
    stored = load_file(str(tmp_path / "s" / "hellora_adapter.safetensors"))
    mask_names = [n for n in stored if n.endswith("lora_B_mask")]
    assert mask_names and all(stored[n].dtype == torch.bool for n in mask_names)
    loaded = load_adapter(tiny_model("olmoe"), tmp_path / "s")
    with torch.no_grad():
        assert torch.equal(loaded(IDS).logits, ours)
    for n, buf in loaded.named_buffers():
        if n.endswith("lora_B_mask"):
            assert torch.equal(buf, stored[n])
    assert not any(p.requires_grad for n, p in loaded.named_parameters() if n.endswith("lora_A"))
    export_peft(loaded, tmp_path / "peft")
    with torch.no_grad():
        theirs = PeftModel.from_pretrained(tiny_model("olmoe"), tmp_path / "peft")(IDS).logits
    torch.testing.assert_close(theirs, ours, rtol=1e-4, atol=1e-5)
    export_merged(loaded, tmp_path / "merged")
    with torch.no_grad():
        merged = AutoModelForCausalLM.from_pretrained(tmp_path / "merged")(IDS).logits
    torch.testing.assert_close(merged, ours, rtol=1e-4, atol=1e-5)


def test_lori_d_round_trip_keeps_a_frozen(lori_d_dirs):
    model = load_adapter(tiny_model("olmoe"), lori_d_dirs["hellora"])
    saved = load_file(str(lori_d_dirs["hellora"] / "hellora_adapter.safetensors"))
    for n, p in model.named_parameters():
        if "lora_" in n:
            assert torch.equal(p, saved[n]) and p.requires_grad == n.endswith("lora_B")


def test_lori_s_refusals(lori_d_dirs, tmp_path):
    with pytest.raises(HelloraError, match="adapter.lori_from"):
        attach_adapters(tiny_model("olmoe"), AdapterConfig(method="lora", variant="lori_s"))
    with pytest.raises(HelloraError, match="read_lori_d"):  # attaching reads no folder: the caller hands it over
        attach_adapters(tiny_model("olmoe"), AdapterConfig(method="lora", variant="lori_s", r=4, alpha=8,
                                                           lori_from=str(lori_d_dirs["lora"])))
    with pytest.raises(HelloraError, match="adapter.lori_from"):
        AdapterConfig(method="lora", variant="lori_d", lori_from="x")
    with pytest.raises(HelloraError, match="adapter.lori_density"):
        AdapterConfig(variant="lori_s", lori_density=0.0)
    with pytest.raises(HelloraError, match="r=4"):
        attach_adapters(tiny_model("olmoe"), AdapterConfig(method="lora", variant="lori_s", r=8,
                                                           lori_from=str(lori_d_dirs["lora"])),
                        lori_d=read_lori_d(lori_d_dirs["lora"]))
    plain = tiny_model("olmoe")
    attach_adapters(plain, AdapterConfig(method="lora", r=4, alpha=8))
    save_adapter(plain, tmp_path / "plain")
    with pytest.raises(HelloraError, match="LoRI-D"):
        lori_mask_from_adapter(tmp_path / "plain")
    other = tiny_model("olmoe")
    with pytest.raises(HelloraError, match="other experts"):
        attach_adapters(other, AdapterConfig(variant="lori_s", r=4, alpha=8, lori_from=str(lori_d_dirs["hellora"])),
                        first_k_placement(other, (0, 2)), lori_d=read_lori_d(lori_d_dirs["hellora"]))
