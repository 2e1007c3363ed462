"""Sorting a batch's top-k assignments by expert, the layout every grouped expert computation starts from.

A MoE layer routes each of T tokens to k experts: `top_k_index (T, k)`. Flattening gives S = T*k
(token, expert) rows. Sorting the rows by expert id makes each expert's rows one contiguous segment
`[starts[e], ends[e])` of the sorted order, so an expert's matmul (and, for hot experts, its LoRA) runs on a
view of one segment: no gather per expert, and a cold expert's segment is simply never touched by adapter code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import torch


class Columns(Protocol):
    """The output columns one LoRA pair writes, as the expert-subset backends read them: `subset_lora.ColumnBlock`
    (declared here so the backends, which subset_lora imports, need not import it back)."""

    @property
    def offset(self) -> int: ...

    @property
    def step(self) -> int: ...

    @property
    def width(self) -> int: ...

    def of(self, t: torch.Tensor) -> torch.Tensor: ...


LoRAPairs = Sequence[tuple[torch.Tensor, torch.Tensor]]  # (A (K, r, in), B (K, |block|, r)) per column block
PairGrads = list[tuple[torch.Tensor | None, torch.Tensor | None]]  # (dA, dB) per pair, None where not needed


@dataclass
class ExpertRouting:
    """Assignments of a batch, sorted by expert.

    perm:       (S,)  row order: sorted row i is flattened assignment perm[i]
    token_idx:  (S,)  token of each sorted row (perm // k)
    expert_ids: (S,)  expert of each sorted row (non-decreasing)
    ends:       (E,)  int32 cumulative row count: expert e owns rows [ends[e-1], ends[e])
    num_tokens, top_k: T and k
    adapter_rows: rows that host-side adapter code touched so far (a probe for tests; the Triton path, which
                  never reads the routing to the host, leaves it 0)
    """

    perm: torch.Tensor
    token_idx: torch.Tensor
    expert_ids: torch.Tensor
    ends: torch.Tensor
    num_tokens: int
    top_k: int
    adapter_rows: int = 0
    _bounds: list[int] | None = None

    @property
    def num_experts(self) -> int:
        return self.ends.numel()

    def segment_bounds(self) -> list[int]:
        """Host copy of [0, ends...] (E+1 ints), computed once per forward: the reference path's loop bounds."""
        if self._bounds is None:
            self._bounds = [0] + self.ends.tolist()
        return self._bounds

    def unsort_and_combine(self, rows: torch.Tensor) -> torch.Tensor:
        """(S, H) rows in sorted order -> (T, H): each token's k rows summed in slot order.

        The same order of summation as transformers' grouped path (scatter back, view (T, k, H), sum over k),
        so a token whose k experts are all unadapted gets bitwise the base output.
        """
        unsorted = torch.empty_like(rows)
        unsorted[self.perm] = rows
        return unsorted.view(self.num_tokens, self.top_k, -1).sum(dim=1)


def sort_by_expert(top_k_index: torch.Tensor, num_experts: int) -> ExpertRouting:
    """(T, k) expert ids -> `ExpertRouting`.

    The same (default) sort as transformers' grouped path: equal inputs give equal row order, which keeps the
    rows of cold experts bitwise equal to the frozen model's.
    """
    num_tokens, top_k = top_k_index.shape
    flat = top_k_index.reshape(-1)
    expert_ids, perm = torch.sort(flat)
    # one past each expert's last row; searchsorted keeps it on the device (bincount would sync on CUDA to size
    # its output)
    bounds = torch.arange(num_experts, device=flat.device, dtype=expert_ids.dtype)
    ends = torch.searchsorted(expert_ids, bounds, right=True).to(torch.int32)
    return ExpertRouting(
        perm=perm,
        token_idx=perm // top_k,
        expert_ids=expert_ids,
        ends=ends,
        num_tokens=num_tokens,
        top_k=top_k,
    )
