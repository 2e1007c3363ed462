"""One LoRA A product for attention projections that read the same input (a runtime optimisation only).

q_proj, k_proj and v_proj (MLA: q_a_proj or q_proj, and kv_a_proj_with_mqa) are called on the very same hidden
states x (.., T, H). Separately, each LoRALinear computes its own skinny, memory-bound x A_i^T (.., T, r) and reads
all of x for it. A group computes them at once and hands each member its r columns:

    P = x @ cat(A_q, A_k, A_v)^T          # (.., T, 3r): x is read once
    P_q, P_k, P_v = P.split(r, dim=-1)     # views; member i then applies its own B_i: P_i B_i^T
    backward: dP = cat(dP_q, dP_k, dP_v); dA = dP^T x (one read of x); dx = dP @ cat(A) (one GEMM)

Each member keeps its own `lora_A` / `lora_B` (names, state dicts, merge, save/load, PEFT export, LoRI's frozen A
and masked B are unchanged); the concatenation is differentiable, so gradients are those of separate products.

Correctness never depends on the grouping (a guess from module names): a member uses the group's product only when
it is called with the same tensor object (held by weak reference) at the same `_version`, under the same grad /
autocast state, outside or inside the same backward pass (gradient checkpointing's recomputation runs inside
backward on new tensors and simply recomputes), and with every member's A unchanged since. Anything else, and
inputs without a version counter (inference-mode tensors) or code being compiled, computes its own x A^T. A wrong
guess therefore costs only the unused columns. Inputs of few rows (decoding one token at a time) are not shared
either: building cat(A) copies sum(r) x H values, more than the (k - 1) x rows x H reads of x sharing saves.

Memory: a group keeps at most one product, and only while some member still has to take its columns: the last
member to take its piece drops it, and the group's next new input replaces it. During training the pieces are
saved for backward by autograd anyway, exactly like the separate products they replace, so nothing extra stays
alive. Only when a member is never called on that input (a wrong guess) is one (.., T, 3r) product per attention
module held until the module's next input (with autograd on, together with the graph that made it, which saves x).

Only plain `LoRALinear`s without dropout join a group: with dropout each projection must see its own mask (as
PEFT does). DoRA and LoRAMoE layers compute their own updates and never join.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hellora.adapters.linear import LoRALinear

# Projections of one attention module that transformers' attention code calls on the same hidden states
SHARED_INPUT_NAMES = ("q_proj", "k_proj", "v_proj", "q_a_proj", "kv_a_proj_with_mqa")


def _context(x: torch.Tensor) -> tuple | None:
    """What a reused product must have been computed under; None where reuse cannot be checked."""
    if x.is_inference() or torch.compiler.is_compiling():
        return None
    device = x.device.type  # graph task: -1 outside backward; checkpointing recomputes inside one
    return (x._version, torch.is_grad_enabled(), torch.is_autocast_enabled(device), torch.get_autocast_dtype(device),
            torch._C._current_graph_task_id())


@dataclass
class _SharedProduct:
    x: weakref.ref                          # the input P was computed from (not kept alive by the group)
    context: tuple
    a_versions: tuple[tuple[torch.Tensor, int], ...]
    pieces: dict[LoRALinear, torch.Tensor]  # member -> its (.., T, r) columns of P, until it takes them

    def matches(self, x: torch.Tensor, context: tuple) -> bool:
        return (self.x() is x and self.context == context
                and all(a._version == version for a, version in self.a_versions))


class SharedInputGroup:
    """LoRALinears called on one input; `members[i].shared_input` is the group. Not a Module, so it adds nothing
    to state dicts, `named_modules` or parameters."""

    def __init__(self, members: list[LoRALinear]) -> None:
        self.members = list(members)
        self.shared_products = 0  # group products computed (tests, benchmarks)
        self.reused = 0           # member calls served from a group product
        self._product: _SharedProduct | None = None
        for m in self.members:
            m.shared_input = self

    def __getstate__(self) -> dict:  # deepcopy / pickle: a pending product (weakref, autograd graph) is dropped
        return {**self.__dict__, "_product": None}

    def lora_input(self, member: LoRALinear, x: torch.Tensor) -> torch.Tensor:
        """(.., T, r) = x A_member^T, from the group's product when it was computed from this very `x`."""
        context = _context(x)
        product = self._product
        if context is not None and product is not None and product.matches(x, context):
            piece = product.pieces.pop(member, None)
            if not product.pieces:
                self._product = None
            if piece is not None:
                self.reused += 1
                return piece
            return F.linear(x, member.lora_A.to(x.dtype))  # called twice on one input: its piece is gone
        self._product = None
        members = [m for m in self.members if m.adapter_enabled and m.lora_A.device == x.device]
        sizes = [m.r for m in members]
        rows = x.numel() // max(x.shape[-1], 1)
        # the cat copies sum(r) x H values; sharing saves (k - 1) x rows x H reads of x (and as many in backward)
        if context is None or member not in members or (len(members) - 1) * rows <= 2 * sum(sizes):
            return F.linear(x, member.lora_A.to(x.dtype))
        a = torch.cat([m.lora_A for m in members]).to(x.dtype)  # (sum r, H)
        pieces = dict(zip(members, F.linear(x, a).split(sizes, dim=-1)))
        self.shared_products += 1
        mine = pieces.pop(member)
        self._product = _SharedProduct(weakref.ref(x), context, tuple((m.lora_A, m.lora_A._version) for m in members),
                                       pieces)
        return mine


def group_shared_inputs(attention: nn.Module) -> list[SharedInputGroup]:
    """Group `attention`'s plain LoRA projections (SHARED_INPUT_NAMES, dropout 0) by base `in_features`, A's dtype
    and device; groups of two or more are attached to their members and returned."""
    by_input: dict[tuple, list[LoRALinear]] = {}
    for name, module in attention.named_children():
        if name in SHARED_INPUT_NAMES and type(module) is LoRALinear and isinstance(module.dropout, nn.Identity):
            key = (module.base_layer.in_features, module.lora_A.dtype, module.lora_A.device)
            by_input.setdefault(key, []).append(module)
    return [SharedInputGroup(members) for members in by_input.values() if len(members) >= 2]
