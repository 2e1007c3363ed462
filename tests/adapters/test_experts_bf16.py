"""bf16 exactness: attaching hellora with zero-initialised B leaves every family's model bitwise the frozen one.

transformers combines expert outputs in the routing weights' own dtype (float32 for most routers: the product
`y (bf16) * w (fp32)` promotes to float32, the k rows are summed in float32, then one cast to bf16). The wrapper
does exactly that, so a hot expert whose update is zero changes no bit, and nor does a cold one.
"""

import pytest
import torch

from hellora.adapters import AdapterConfig, attach_adapters
from hellora.adapters.experts import HotExpertsLoRA
from hellora.models.families import describe_moe_model
from hellora.models.tiny import tiny_model
from tests.conftest import FUSED_FAMILIES
from tests.helpers import first_k_placement


@pytest.mark.parametrize("family", FUSED_FAMILIES)
def test_zero_adapters_are_bitwise_the_frozen_model_in_bf16(family, monkeypatch):
    monkeypatch.delenv("HELLORA_EXPERT_KERNEL", raising=False)
    model = tiny_model(family, dtype=torch.bfloat16)
    ids = torch.randint(0, model.config.vocab_size, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        frozen = model(input_ids=ids).logits
    attach_adapters(model, AdapterConfig(method="hellora", r=4, alpha=8, targets="pure"), first_k_placement(model))
    wrappers = [m for m in model.modules() if isinstance(m, HotExpertsLoRA)]
    assert wrappers and all(w.lora_down.lora_B.abs().sum() == 0 for w in wrappers)  # B starts at zero
    with torch.no_grad():
        adapted = model(input_ids=ids).logits
    assert adapted.dtype == torch.bfloat16
    assert torch.equal(adapted, frozen)
    assert sum(w.last_adapter_rows for w in wrappers) > 0  # the hot rows did go through the adapter


@pytest.mark.parametrize("family", FUSED_FAMILIES)
def test_cold_tokens_are_bitwise_the_experts_module_in_bf16(family):
    """One experts module, non-zero adapters, the router's own weight dtype (float32) as transformers passes it."""
    model = tiny_model(family, dtype=torch.bfloat16)
    moe = describe_moe_model(model).moe_layers[0]
    experts = model.get_submodule(moe.experts_path)
    experts.requires_grad_(False)
    wrapper = HotExpertsLoRA(experts, moe.layout, [1, 4], r=4, alpha=8, init="random", dtype=torch.bfloat16,
                             generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(1)
    x = torch.randn(48, moe.layout.hidden_size, generator=g).to(torch.bfloat16)
    idx = torch.stack([torch.randperm(moe.layout.num_experts, generator=g)[:2] for _ in range(48)])
    for w in (torch.rand(48, 2, generator=g), torch.rand(48, 2, generator=g).to(torch.bfloat16)):
        with torch.no_grad():
            base, out = experts(x, idx, w), wrapper(x, idx, w)
        cold = ~torch.isin(idx, torch.tensor([1, 4])).any(dim=1)
        assert cold.any() and (~cold).any()
        assert torch.equal(out[cold], base[cold]), w.dtype
        assert not torch.equal(out[~cold], base[~cold])
