"""Sorting assignments by expert: segments, order and the recombination that keeps cold tokens bitwise."""

import torch

from hellora.kernels.routing import sort_by_expert


def test_segments_match_a_count_including_experts_without_rows():
    g = torch.Generator().manual_seed(0)
    idx = torch.stack([torch.randperm(9, generator=g)[:3] for _ in range(40)])
    idx[idx == 4] = 8  # expert 4 gets nothing (duplicates in a row do not matter for sorting)
    routing = sort_by_expert(idx, 10)  # expert 9 never appears either
    counts = torch.bincount(idx.reshape(-1), minlength=10)
    assert routing.ends.dtype == torch.int32
    assert torch.equal(routing.ends.long(), counts.cumsum(0))
    assert routing.segment_bounds() == [0, *counts.cumsum(0).tolist()]
    assert torch.equal(routing.expert_ids, idx.reshape(-1)[routing.perm])
    assert torch.equal(routing.token_idx, routing.perm // 3)


def test_unsort_and_combine_sums_each_tokens_rows():
    idx = torch.tensor([[2, 0], [1, 2], [0, 1]])
    routing = sort_by_expert(idx, 3)
    rows = torch.arange(6, dtype=torch.float32).unsqueeze(1) + 1  # sorted row i holds i + 1
    combined = routing.unsort_and_combine(rows)
    expected = torch.zeros(3, 1)
    for i, flat in enumerate(routing.perm.tolist()):
        expected[flat // 2] += rows[i]
    assert torch.equal(combined, expected)
