"""Routing counts against a hand count, with padding, in training and under gradient checkpointing."""

import pytest
import torch

from hellora.adapters import AdapterConfig, attach_adapters
from hellora.models.families import describe_moe_model
from hellora.models.tiny import tiny_model
from hellora.profiling import ExpertActivationCounter, profile_experts
from tests.conftest import FUSED_FAMILIES
from tests.helpers import tiny_deepseek_layout


def _batch():
    ids = torch.randint(3, 128, (3, 9), generator=torch.Generator().manual_seed(5))
    mask = torch.ones_like(ids)
    mask[0, 6:] = 0
    mask[2, 3:] = 0
    return ids.masked_fill(mask == 0, 0), mask


def _hand_count(model, ids, mask):
    """Count from the routers' own outputs, masking padding by hand with Python loops."""
    spec = describe_moe_model(model)
    seen = {}
    hooks = []
    for row, moe in enumerate(spec.moe_layers):
        def hook(module, args, output, row=row):
            seen[row] = output[2] if moe.kind == "fused" else output[0]
        hooks.append(model.get_submodule(moe.router_path).register_forward_hook(hook))
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask)
    for h in hooks:
        h.remove()
    counts = torch.zeros(len(spec.moe_layers), spec.num_experts, dtype=torch.int64)
    batch, seq = ids.shape
    for row, idx in seen.items():
        idx = idx.reshape(batch * seq, -1)
        for b in range(batch):
            for s in range(seq):
                if mask[b, s]:
                    for e in idx[b * seq + s].tolist():
                        counts[row, e] += 1
    return counts


@pytest.mark.parametrize("family", FUSED_FAMILIES + ["deepseek_layout"])
def test_counts_equal_hand_count_and_skip_padding(family):
    model = tiny_deepseek_layout() if family == "deepseek_layout" else tiny_model(family)
    ids, mask = _batch()
    with ExpertActivationCounter(model) as counter, torch.no_grad():
        model(input_ids=ids, attention_mask=mask)
    expected = _hand_count(model, ids, mask)
    assert torch.equal(counter.counts, expected)
    top_k = describe_moe_model(model).top_k
    assert counter.counts.sum(dim=1).tolist() == [int(mask.sum()) * top_k] * len(expected)
    assert counter.tokens.tolist() == [int(mask.sum())] * len(expected)
    assert (counter.mass > 0).any()


def test_padded_batch_counts_equal_unpadded_runs():
    model = tiny_model("olmoe")
    ids, mask = _batch()
    with ExpertActivationCounter(model) as padded, torch.no_grad():
        model(input_ids=ids, attention_mask=mask)
    with ExpertActivationCounter(model) as single, torch.no_grad():
        for b in range(ids.shape[0]):
            n = int(mask[b].sum())
            model(input_ids=ids[b:b + 1, :n])
    assert torch.equal(padded.counts, single.counts)


def test_counting_during_training_with_gradient_checkpointing_counts_once():
    model = tiny_model("mixtral")
    ids, mask = _batch()
    with ExpertActivationCounter(model) as reference, torch.no_grad():
        model(input_ids=ids, attention_mask=mask)
    attach_adapters(model, AdapterConfig(method="lora", r=4, alpha=8))
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    with ExpertActivationCounter(model) as counter:
        out = model(input_ids=ids, attention_mask=mask, labels=ids.masked_fill(mask == 0, -100))
        out.loss.backward()
    assert torch.equal(counter.counts, reference.counts)


def test_hooks_are_removed_after_the_context():
    model = tiny_model("olmoe")
    ids, mask = _batch()
    with ExpertActivationCounter(model) as counter, torch.no_grad():
        model(input_ids=ids, attention_mask=mask)
    total = counter.counts.sum().item()
    with torch.no_grad():
        model(input_ids=ids, attention_mask=mask)
    assert counter.counts.sum().item() == total


def test_profile_experts_forward_mode():
    model = tiny_model("qwen3_moe")
    ids, mask = _batch()
    profile = profile_experts(model, [{"input_ids": ids, "attention_mask": mask, "labels": ids}],
                              source={"data": "synthetic"}, progress=False)
    assert profile.mode == "forward" and profile.layers == [0, 1]
    assert sum(profile.counts[0]) == int(mask.sum()) * 2
    assert profile.fingerprint and profile.meta["torch"]
