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
    out[t] = sum over t's k rows of weight * y          (T, H)

Rows routed to cold experts are never touched by adapter code, so a token whose k experts are all cold gets
bitwise the frozen module's output, and cold experts cost no adapter FLOPs. PEFT's `target_parameters` instead
folds B @ A into the whole (E, ...) weight every step and cannot restrict it to a subset.
"""

from __future__ import annotations

import torch
from torch import nn

from hellora.adapters.base import AdapterLayer, new_lora_pair
from hellora.kernels.grouped import grouped_linear
from hellora.kernels.reference import expert_subset_lora_
from hellora.kernels.routing import sort_by_expert
from hellora.models.families import FusedExpertLayout


def gate_up_columns(layout: FusedExpertLayout, part: str) -> slice:
    """Columns of the fused (.., 2I) gate_up output holding `part` ("gate" or "up")."""
    i = layout.intermediate_size
    if layout.interleaved:
        return slice(0, None, 2) if part == "gate" else slice(1, None, 2)
    return slice(0, i) if part == "gate" else slice(i, 2 * i)


class ExpertLoRAWeights(nn.Module):
    """Stacked LoRA pair for K experts of one projection: lora_A (K, r, in), lora_B (K, out, r)."""

    def __init__(self, num_slots: int, in_features: int, out_features: int, r: int, *, device, dtype, init,
                 generator) -> None:
        super().__init__()
        self.lora_A, self.lora_B = new_lora_pair(
            (num_slots, r, in_features), (num_slots, out_features, r), device=device, dtype=dtype, init=init,
            generator=generator,
        )

    def delta(self, slot: int, scale: float) -> torch.Tensor:
        """(out, in) float32 update of one expert."""
        return (self.lora_B[slot].float() @ self.lora_A[slot].float()) * scale


class HotExpertsLoRA(AdapterLayer):
    role = "experts"

    def __init__(
        self, base_layer: nn.Module, layout: FusedExpertLayout, hot_experts: list[int], r: int, alpha: float, *,
        dropout: float = 0.0, dtype: torch.dtype = torch.float32, init: str = "default",
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(base_layer, r, alpha)
        self.layout = layout
        self.hot_experts = sorted(int(e) for e in hot_experts)
        self.register_buffer("hot_expert_ids", torch.tensor(self.hot_experts, dtype=torch.long), persistent=False)
        k, h, i = len(self.hot_experts), layout.hidden_size, layout.intermediate_size
        opts = dict(device=base_layer.down_proj.device, dtype=dtype, init=init, generator=generator)
        self.lora_gate = ExpertLoRAWeights(k, h, i, r, **opts)
        self.lora_up = ExpertLoRAWeights(k, h, i, r, **opts)
        self.lora_down = ExpertLoRAWeights(k, i, h, r, **opts)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.last_adapter_rows = 0  # rows the adapter touched in the last forward (a test probe)

    def _apply_gate(self, gate_up: torch.Tensor) -> torch.Tensor:
        base = self.base_layer
        if hasattr(type(base), "_apply_gate"):
            return base._apply_gate(gate_up)
        gate, up = gate_up.chunk(2, dim=-1)
        return base.act_fn(gate) * up

    def forward(self, hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor):
        """hidden_states (T, H), top_k_index (T, k), top_k_weights (T, k) -> (T, H)."""
        base, layout = self.base_layer, self.layout
        routing = sort_by_expert(top_k_index, layout.num_experts)
        x = hidden_states[routing.token_idx]  # (S, H)
        gu_bias = getattr(base, "gate_up_proj_bias", None) if layout.has_bias else None
        down_bias = getattr(base, "down_proj_bias", None) if layout.has_bias else None
        gate_up = grouped_linear(x, base.gate_up_proj, routing, gu_bias, layout.transposed)  # (S, 2I)
        active = self.adapter_enabled and self.hot_experts
        rows = 0
        if active:
            xd = self.dropout(x)
            for part, weights in (("gate", self.lora_gate), ("up", self.lora_up)):
                cols = gate_up[:, gate_up_columns(layout, part)]
                rows += expert_subset_lora_(cols, xd, routing, self.hot_experts, weights.lora_A, weights.lora_B,
                                            self.scale)
        h = self._apply_gate(gate_up)  # (S, I)
        y = grouped_linear(h, base.down_proj, routing, down_bias, layout.transposed)  # (S, H)
        if active:
            rows += expert_subset_lora_(y, self.dropout(h), routing, self.hot_experts, self.lora_down.lora_A,
                                        self.lora_down.lora_B, self.scale)
        self.last_adapter_rows = rows
        y = y * top_k_weights.reshape(-1)[routing.perm].unsqueeze(-1).to(y.dtype)
        return routing.unsort_and_combine(y).to(hidden_states.dtype)

    def expert_deltas(self, slot: int) -> dict[str, torch.Tensor]:
        """Float32 updates of one hot expert in the base weights' own layout.

        gate_up: (2I, H) or transposed (H, 2I) with zeros outside its gate/up rows; down: (H, I) or (I, H).
        """
        layout = self.layout
        i, h = layout.intermediate_size, layout.hidden_size
        gate_up = torch.zeros(2 * i, h, device=self.lora_gate.lora_A.device)
        gate_up[gate_up_columns(layout, "gate")] = self.lora_gate.delta(slot, self.scale)
        gate_up[gate_up_columns(layout, "up")] = self.lora_up.delta(slot, self.scale)
        down = self.lora_down.delta(slot, self.scale)
        if layout.transposed:
            return {"gate_up_proj": gate_up.t(), "down_proj": down.t()}
        return {"gate_up_proj": gate_up, "down_proj": down}

    @torch.no_grad()
    def merged_base(self) -> nn.Module:
        base = self.base_layer
        for slot, expert in enumerate(self.hot_experts):
            for name, delta in self.expert_deltas(slot).items():
                w = getattr(base, name)
                w[expert].copy_((w[expert].float() + delta.to(w.device)).to(w.dtype))
        return base
