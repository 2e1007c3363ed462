"""On a GPU (skipped without one): cold experts stored as int8 / NF4 on CUDA give the logits and input gradients
of the torchao round-trip reference, in bf16, for Mixtral and gpt-oss (the CPU suite checks all nine families)."""

import pytest
import torch

pytest.importorskip("torchao", reason="needs torchao")
pytestmark = pytest.mark.gpu


@pytest.mark.parametrize("family", ["mixtral", "gpt_oss"])
@pytest.mark.parametrize("precision", ["int8", "nf4"])
def test_quantized_cold_experts_on_cuda_match_the_reference(family, precision):
    from hellora.quant import adapted_experts, quantize_experts
    from tests.quant.test_exactness import adapted_model, check_equal, loss_and_grads, reference_of

    model = adapted_model(family, torch.bfloat16)
    ref = reference_of(model, precision).cuda()
    model = model.cuda()
    quantize_experts(model, adapted_experts(model), cold=precision)
    embeds = torch.randn(2, 12, model.config.hidden_size, generator=torch.Generator().manual_seed(3))
    embeds = embeds.to("cuda", torch.bfloat16)
    for a, b in zip(loss_and_grads(model, embeds)[:2], loss_and_grads(ref, embeds)[:2]):
        check_equal(a, b, torch.bfloat16)
