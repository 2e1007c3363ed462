"""Bytes of expert weights stored in the compute dtype, int8 or NF4, from shapes alone (no torch).

The memory plan (`hellora params --cold-experts nf4`) and the stored tensors (`quant/store.py`) follow the same
rules, and a test holds them equal on loaded reduced-shape models. One expert's weight of one projection is a 2-D
(rows, cols) block of the fused parameter, in the fused layout's own orientation (gate_up (2I, H), down (H, I);
gpt-oss stores them transposed). Per expert, as torchao stores it:

    keep    rows * cols * c                                   c = bytes of the compute dtype (2 for bf16)
    int8    rows * cols  +  rows * (4 + 1)                    int8 codes; a float32 scale and an int8 zero point
                                                              per row (symmetric: the zero point is 0)
    nf4     rows * cols / 2  +  n_blocks  +  n_groups * c  +  c
            4-bit codes, two per byte; one int8 absmax per block of `block` entries (64); those absmaxes are
            themselves quantized in groups of `group` (256) blocks, each group with one scale factor in the compute
            dtype; one mean per expert. Plus the 16-entry NF4 code table (16 * c) once per fused weight.

Shapes too small for 64 / 256 take the largest power-of-two block and group that divide them (`nf4_blocks`).
"""

from __future__ import annotations

import math

from hellora.utils.errors import HelloraError
from hellora.choices import ExpertPrecision

NF4_BLOCK = 64          # entries per absmax block (QLoRA's)
NF4_GROUP = 256         # blocks per double-quantization group (QLoRA's)
NF4_TABLE = 16          # entries of the NF4 code table
INT8_ROW_BYTES = 4 + 1  # float32 scale + int8 zero point per row


def nf4_blocks(numel: int) -> tuple[int, int]:
    """(block, group) for an expert weight of `numel` entries: 64 and 256 where they divide, else the largest
    powers of two that do (torchao needs both to divide exactly)."""
    block = math.gcd(numel, NF4_BLOCK)
    group = math.gcd(numel // block, NF4_GROUP) if block else 0
    if block < 2 or group < 2:
        raise HelloraError(f"nf4: an expert weight of {numel} entries cannot be split into even blocks "
                           f"(needs a multiple of 4); store these experts as int8 or keep")
    return block, group


def expert_matrix_bytes(precision: ExpertPrecision, rows: int, cols: int, compute_bytes: int) -> int:
    """Bytes of one expert's (rows, cols) weight of one projection stored with `precision` (table excluded)."""
    numel = rows * cols
    if precision is ExpertPrecision.KEEP:
        return numel * compute_bytes
    if precision is ExpertPrecision.INT8:
        return numel + rows * INT8_ROW_BYTES
    block, group = nf4_blocks(numel)
    n_blocks = numel // block
    return numel // 2 + n_blocks + (n_blocks // group) * compute_bytes + compute_bytes


def table_bytes(precision: ExpertPrecision, compute_bytes: int) -> int:
    """Bytes a fused weight holding any expert of `precision` keeps once (the NF4 code table)."""
    return NF4_TABLE * compute_bytes if precision is ExpertPrecision.NF4 else 0


def expert_bytes(precision: ExpertPrecision, hidden: int, intermediate: int, compute_bytes: int,
                 transposed: bool = False) -> int:
    """Bytes of one routed expert (gate_up (2I, H) and down (H, I); (H, 2I) and (I, H) when `transposed`)
    stored with `precision`."""
    gate_up, down = ((hidden, 2 * intermediate), (intermediate, hidden)) if transposed else \
        ((2 * intermediate, hidden), (hidden, intermediate))
    return (expert_matrix_bytes(precision, *gate_up, compute_bytes)
            + expert_matrix_bytes(precision, *down, compute_bytes))


def moe_layer_expert_bytes(cold: ExpertPrecision, hot: ExpertPrecision, *, num_experts: int, num_hot: int,
                           hidden: int, intermediate: int, compute_bytes: int, transposed: bool = False) -> int:
    """Bytes of one MoE layer's routed experts: `num_hot` stored as `hot`, the rest as `cold`, in two fused
    weights (gate_up and down), each with its tables."""
    num_hot = min(num_hot, num_experts)
    total = (num_hot * expert_bytes(hot, hidden, intermediate, compute_bytes, transposed)
             + (num_experts - num_hot) * expert_bytes(cold, hidden, intermediate, compute_bytes, transposed))
    used = {hot} if num_hot else set()
    if num_hot < num_experts:
        used.add(cold)
    return total + 2 * sum(table_bytes(p, compute_bytes) for p in used)
