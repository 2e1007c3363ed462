"""LoRA on a subset of the experts of a fused transformers 5 experts module.

The wrapped module stores all E experts as `gate_up_proj (E, 2I, H)` and `down_proj (E, H, I)` (or transposed,
gpt-oss). This wrapper keeps K hot experts' adapters, one LoRA pair per projection as the paper counts them:

    gate: A (K, r, H), B (K, I, r)     up: A (K, r, H), B (K, I, r)     down: A (K, r, I), B (K, H, r)

Forward, for S = T*k (token, expert) rows sorted by expert:

    gate_up = grouped(x, W_gate_up)                     (S, 2I)   base, every expert
    gate_up[rows(e), gate] += s * x A_g[e]^T B_g[e]^T   hot experts only, in place
    gate_up[rows(e), up]   += s * x A_u[e]^T B_u[e]^T
    h = act(gate) * up                                  (S, I)    the experts module's own gating
    y = grouped(h, W_down) ; y[rows(e)] += s * h A_d[e]^T B_d[e]^T
    out[t] = sum over t's k rows of weight * y          (T, H)    in the routing weights' dtype, one cast

Rows routed to cold experts are never touched by adapter code, so a token whose k experts are all cold gets
bitwise the frozen module's output, and cold experts cost no adapter FLOPs. PEFT's `target_parameters` instead
folds B @ A into the whole (E, ...) weight every step and cannot restrict it to a subset.

Each projection's weights are one module (`lora_gate`, `lora_up`, `lora_down`) that owns its update of the hot
rows (`add_update_`) and its merge (`merged_weight`): plain LoRA here (B masked under LoRI-S), DoRA in
`dora.ExpertDoRAWeights`, a LoRA mixture in `loramoe.ExpertLoRAMoEWeights`. They see expert e's base weight of
their projection as an (out, in) view through `weight_of(e)` and its bias through `bias_of(e)`.
"""

from __future__ import annotations

from typing import Callable, Protocol

import torch
from torch import nn

from hellora.adapters.base import AdapterLayer, NewWeights, effective_b, new_lora_pair
from hellora.kernels.grouped import grouped_linear
from hellora.kernels.reference import expert_subset_lora_
from hellora.kernels.routing import ExpertRouting, sort_by_expert
from hellora.kernels.subset_lora import ColumnBlock, expert_kernel_choice, grouped_linear_subset_lora
from hellora.models.families import FusedExpertLayout
from hellora.utils.errors import HelloraError

PARTS = ("gate", "up", "down")


def gate_up_columns(layout: FusedExpertLayout, part: str) -> slice:
    """Columns of the fused (.., 2I) gate_up output holding `part` ("gate" or "up")."""
    i = layout.intermediate_size
    if layout.interleaved:
        return slice(0, None, 2) if part == "gate" else slice(1, None, 2)
    return slice(0, i) if part == "gate" else slice(i, 2 * i)


def gate_up_block(layout: FusedExpertLayout, part: str) -> ColumnBlock:
    """`gate_up_columns` as the fused op's column block."""
    cols = gate_up_columns(layout, part)
    return ColumnBlock(cols.start, cols.step or 1, layout.intermediate_size)


class ExpertLoRAWeights(nn.Module):
    """Stacked LoRA pair for K experts of one projection: lora_A (K, r, in), lora_B (K, out, r)."""

    mergeable = True

    def __init__(self, num_slots: int, in_features: int, out_features: int, r: int, new: NewWeights) -> None:
        super().__init__()
        self.lora_A, self.lora_B = new_lora_pair(
            (num_slots, r, in_features), (num_slots, out_features, r), device=new.device, dtype=new.dtype,
            init=new.init, generator=new.generator,
        )

    def delta(self, slot: int, scale: float) -> torch.Tensor:
        """(out, in) float32 update of one expert."""
        return (effective_b(self)[slot].float() @ self.lora_A[slot].float()) * scale

    def init_from_base(self, weight_of: Callable[[int], torch.Tensor], hot: list[int], scale: float) -> None:
        """Hook for variants whose weights depend on the base weights (DoRA's magnitude); plain LoRA: nothing."""

    def add_update_(self, out: torch.Tensor, x: torch.Tensor, routing: ExpertRouting, hot: list[int], scale: float,
                    *, weight_of: Callable, bias_of: Callable, x_base: torch.Tensor | None = None) -> int:
        """Add the hot experts' update into their rows of `out` (S, out) in place; returns the rows touched.

        x (S, in) is the (dropped-out) adapter input; `x_base` is the same input when dropout is active (DoRA
        rescales the base output of the dropped-out input, as PEFT does), None otherwise.
        """
        return expert_subset_lora_(out, x, routing, hot, self.lora_A, effective_b(self), scale)

    def merged_weight(self, slot: int, weight: torch.Tensor, scale: float) -> torch.Tensor:
        """(out, in) float32 weight of one hot expert with its update folded in."""
        return weight + self.delta(slot, scale).to(weight.device)


class PartWeights(Protocol):
    """One projection's weights of the hot experts, as `HotExpertsLoRA` uses them: `ExpertLoRAWeights`, its DoRA
    subclass, or LoRAMoE's `ExpertLoRAMoEWeights` (each an nn.Module)."""

    @property
    def lora_A(self) -> torch.Tensor: ...

    def init_from_base(self, weight_of: Callable[[int], torch.Tensor], hot: list[int], scale: float) -> None: ...

    def add_update_(self, out: torch.Tensor, x: torch.Tensor, routing: ExpertRouting, hot: list[int], scale: float,
                    *, weight_of: Callable, bias_of: Callable, x_base: torch.Tensor | None = None) -> int: ...

    def merged_weight(self, slot: int, weight: torch.Tensor, scale: float) -> torch.Tensor: ...


class HotExpertsLoRA(AdapterLayer):
    role = "experts"

    def __init__(
        self, base_layer: nn.Module, layout: FusedExpertLayout, hot_experts: list[int], r: int, alpha: float, *,
        dropout: float = 0.0, dtype: torch.dtype = torch.float32, init: str = "default",
        generator: torch.Generator | None = None, weights_cls: Callable[..., PartWeights] = ExpertLoRAWeights,
    ) -> None:
        super().__init__(base_layer, r, alpha)
        self.layout = layout
        self.hot_experts = sorted(int(e) for e in hot_experts)
        self.register_buffer("hot_expert_ids", torch.tensor(self.hot_experts, dtype=torch.long), persistent=False)
        k, h, i = len(self.hot_experts), layout.hidden_size, layout.intermediate_size
        new = NewWeights(base_layer.down_proj.device, dtype, init, generator)
        self.lora_gate = weights_cls(k, h, i, r, new)
        self.lora_up = weights_cls(k, h, i, r, new)
        self.lora_down = weights_cls(k, i, h, r, new)
        self.mergeable = bool(getattr(self.lora_down, "mergeable", True))
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.last_adapter_rows = 0  # rows the adapter touched in the last forward (a test probe)
        with torch.no_grad():
            for part in PARTS:
                self.part_weights(part).init_from_base(self._weight_getter(part), self.hot_experts, self.scale)

    def part_weights(self, part: str) -> PartWeights:
        return getattr(self, f"lora_{part}")

    def part_weight(self, part: str, expert: int) -> torch.Tensor:
        """Expert `expert`'s base weight of `part` as an (out, in) view into the fused parameter."""
        base, layout = self.base_layer, self.layout
        fused = base.down_proj if part == "down" else base.gate_up_proj
        assert isinstance(fused, torch.Tensor)  # the full-precision parameter (a quantized store has no views)
        if part == "down":
            w = fused[expert]  # (H, I), or (I, H) transposed
            return w.t() if layout.transposed else w
        cols = gate_up_columns(layout, part)
        w = fused[expert]  # (2I, H), or (H, 2I) transposed
        return w[:, cols].t() if layout.transposed else w[cols]

    def part_bias(self, part: str, expert: int) -> torch.Tensor | None:
        """(out,) bias of `part` of `expert`, or None (no bias)."""
        if not self.layout.has_bias:
            return None
        bias = self.base_layer.down_proj_bias if part == "down" else self.base_layer.gate_up_proj_bias
        assert isinstance(bias, torch.Tensor)  # layout.has_bias: the fused (E, out) bias parameter
        if part == "down":
            return bias[expert]
        return bias[expert][gate_up_columns(self.layout, part)]

    def _weight_getter(self, part: str) -> Callable[[int], torch.Tensor]:
        return lambda e: self.part_weight(part, e)

    def _bias_getter(self, part: str) -> Callable[[int], torch.Tensor | None]:
        return lambda e: self.part_bias(part, e)

    def _apply_gate(self, gate_up: torch.Tensor) -> torch.Tensor:
        base = self.base_layer
        if hasattr(type(base), "_apply_gate"):
            apply_gate = base._apply_gate  # the experts class's own method (transformers' fused experts)
            assert callable(apply_gate)
            return apply_gate(gate_up)
        gate, up = gate_up.chunk(2, dim=-1)
        act_fn = base.act_fn  # the experts' activation module
        assert callable(act_fn)
        return act_fn(gate) * up

    def _add_(self, part: str, out: torch.Tensor, x: torch.Tensor, routing: ExpertRouting) -> int:
        xd = self.dropout(x)
        x_base = xd if (self.training and not isinstance(self.dropout, nn.Identity)) else None
        return self.part_weights(part).add_update_(
            out, xd, routing, self.hot_experts, self.scale, weight_of=self._weight_getter(part),
            bias_of=self._bias_getter(part), x_base=x_base)

    def _fused_op_applies(self) -> bool:
        """Whether the one-node expert-subset op serves this forward: plain LoRA / LoRI pairs (not DoRA or
        LoRAMoE), no active dropout, frozen expert weights, and not `HELLORA_EXPERT_KERNEL=reference`."""
        base = self.base_layer
        return (
            expert_kernel_choice() != "reference"
            and all(type(self.part_weights(p)) is ExpertLoRAWeights for p in PARTS)
            and (isinstance(self.dropout, nn.Identity) or not self.training)
            and not base.gate_up_proj.requires_grad and not base.down_proj.requires_grad
            and not any(p.requires_grad for n, p in base.named_parameters() if n.endswith("_bias"))
        )

    def _lora_pair(self, part: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(A (K, r, in), B (K, out, r)) of `part`, B through its LoRI-S mask."""
        weights = self.part_weights(part)
        assert isinstance(weights, ExpertLoRAWeights)  # the fused op serves plain LoRA / LoRI pairs only
        return weights.lora_A, effective_b(weights)

    def forward(self, hidden_states: torch.Tensor, top_k_index: torch.Tensor,
                top_k_weights: torch.Tensor) -> torch.Tensor:
        """hidden_states (T, H), top_k_index (T, k), top_k_weights (T, k) -> (T, H)."""
        base, layout = self.base_layer, self.layout
        routing = sort_by_expert(top_k_index, layout.num_experts)
        x = hidden_states[routing.token_idx]  # (S, H)
        gu_bias = getattr(base, "gate_up_proj_bias", None) if layout.has_bias else None
        down_bias = getattr(base, "down_proj_bias", None) if layout.has_bias else None
        active = self.adapter_enabled and self.hot_experts
        if active and self._fused_op_applies():
            ids, pair = self.hot_expert_ids, self._lora_pair
            gate_up = grouped_linear_subset_lora(
                x, base.gate_up_proj, routing, gu_bias, layout.transposed, self.hot_experts, ids,
                [gate_up_block(layout, "gate"), gate_up_block(layout, "up")], [pair("gate"), pair("up")], self.scale)
            h = self._apply_gate(gate_up)  # (S, I)
            y = grouped_linear_subset_lora(
                h, base.down_proj, routing, down_bias, layout.transposed, self.hot_experts, ids,
                [ColumnBlock(0, 1, layout.hidden_size)], [pair("down")], self.scale)
            self.last_adapter_rows = routing.adapter_rows  # 0 on the Triton path, which never syncs to count
        else:
            gate_up = grouped_linear(x, base.gate_up_proj, routing, gu_bias, layout.transposed)  # (S, 2I)
            rows = 0
            if active:
                for part in ("gate", "up"):
                    rows += self._add_(part, gate_up[:, gate_up_columns(layout, part)], x, routing)
            h = self._apply_gate(gate_up)  # (S, I)
            y = grouped_linear(h, base.down_proj, routing, down_bias, layout.transposed)  # (S, H)
            if active:
                rows += self._add_("down", y, h, routing)
            self.last_adapter_rows = rows
        # As transformers combines: y (S, H) times the routing weights in their own dtype (float32 from most
        # routers, so the product promotes to float32), k rows summed in that dtype, one cast at the end. Casting
        # the weights to y's bf16 first would differ from the frozen model by an ulp.
        y = y * top_k_weights.reshape(-1)[routing.perm].unsqueeze(-1)
        return routing.unsort_and_combine(y).to(hidden_states.dtype)

    def expert_deltas(self, slot: int) -> dict[str, torch.Tensor]:
        """Float32 additive updates of one hot expert in the base weights' own layout (plain LoRA / LoRI only).

        gate_up: (2I, H) or transposed (H, 2I) with zeros outside its gate/up rows; down: (H, I) or (I, H).
        """
        layout = self.layout
        i, h = layout.intermediate_size, layout.hidden_size
        assert isinstance(self.lora_gate, ExpertLoRAWeights) and isinstance(self.lora_up, ExpertLoRAWeights)
        assert isinstance(self.lora_down, ExpertLoRAWeights)  # plain LoRA / LoRI pairs (see above)
        gate_up = torch.zeros(2 * i, h, device=self.lora_gate.lora_A.device)
        gate_up[gate_up_columns(layout, "gate")] = self.lora_gate.delta(slot, self.scale)
        gate_up[gate_up_columns(layout, "up")] = self.lora_up.delta(slot, self.scale)
        down = self.lora_down.delta(slot, self.scale)
        if layout.transposed:
            return {"gate_up_proj": gate_up.t(), "down_proj": down.t()}
        return {"gate_up_proj": gate_up, "down_proj": down}

    @torch.no_grad()
    def merged_base(self) -> nn.Module:
        if not isinstance(self.base_layer.gate_up_proj, torch.Tensor):
            raise HelloraError("merge: the experts are stored quantized; dequantize them first "
                               "(hellora.quant.dequantize_experts)")
        # (part, expert) blocks of the fused weights do not overlap, so each is folded from its own unmerged
        # values (DoRA's norm needs them) and written back before the next: one block of float32 at a time.
        for slot, expert in enumerate(self.hot_experts):
            for part in PARTS:
                w = self.part_weight(part, expert)
                w_new = self.part_weights(part).merged_weight(slot, w.float(), self.scale)
                w.copy_(w_new.to(device=w.device, dtype=w.dtype))
        return self.base_layer
