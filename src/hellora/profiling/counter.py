"""Router hooks that count, per MoE layer and expert, the top-k assignments of real tokens.

Where to listen: every fused transformers 5 family calls `experts(hidden_states (T, H), top_k_index (T, k),
top_k_weights (T, k))` after its router, whatever the router does (softmax, sigmoid with correction bias, group
limits), so a forward pre-hook on the experts module sees the final assignments. Remote-code ModuleList layouts
(DeepSeekMoE) return `(topk_idx, topk_weight, ...)` from their `gate` module, so there we hook the gate output.

Padding: a forward pre-hook on the model root remembers the `attention_mask (B, S)`; a layer's T = B*S rows are
then masked so padding is never counted. During generation with a cache (T = B*1) the mask's last column is used.

The hooks run in any forward pass, training included (the paper counts during a LoRA warm-up). Under gradient
checkpointing a layer's forward is re-run inside backward; those re-runs are not counted twice.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

import torch
from torch import nn

from hellora.choices import ExpertStorage
from hellora.models.families import MoEModelSpec, describe_moe_model

if TYPE_CHECKING:
    from hellora.profiling.profile import ExpertProfile

log = logging.getLogger(__name__)


def _in_backward() -> bool:
    return torch._C._current_graph_task_id() != -1


def _parse_gate_output(output: object) -> tuple[torch.Tensor, torch.Tensor | None] | None:
    """(topk_idx, topk_weight) from a remote-code gate's output tuple: the first integer tensor and a float
    tensor of the same shape."""
    items = output if isinstance(output, (tuple, list)) else (output,)
    idx = next((t for t in items if isinstance(t, torch.Tensor) and not t.is_floating_point() and t.dim() >= 1), None)
    if idx is None:
        return None
    weights = next((t for t in items if isinstance(t, torch.Tensor) and t.is_floating_point() and t.shape == idx.shape),
                   None)
    return idx, weights


class ExpertActivationCounter:
    """Context manager accumulating counts (L_moe, E) int64, gate mass (L_moe, E) float64, tokens (L_moe,).

        with ExpertActivationCounter(model) as counter:
            model(**batch)
        counter.counts  # rows follow spec.moe_layers
    """

    def __init__(self, model: nn.Module, spec: MoEModelSpec | None = None) -> None:
        self.model = model
        self.spec = spec or describe_moe_model(model)
        n_layers, n_experts = len(self.spec.moe_layers), self.spec.num_experts
        self.counts = torch.zeros(n_layers, n_experts, dtype=torch.int64)
        self.mass = torch.zeros(n_layers, n_experts, dtype=torch.float64)
        self.tokens = torch.zeros(n_layers, dtype=torch.int64)
        self._mask: torch.Tensor | None = None
        self._handles: list = []
        self._warned = False

    # -- hooks ---------------------------------------------------------------------------------------------------
    def _remember_mask(self, module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
        mask = kwargs.get("attention_mask")
        if mask is None and len(args) > 1 and isinstance(args[1], torch.Tensor):
            mask = args[1]
        self._mask = mask if isinstance(mask, torch.Tensor) and mask.dim() == 2 else None
        if isinstance(mask, torch.Tensor) and mask.dim() != 2 and not self._warned:
            log.warning("attention_mask of shape %s is not (batch, seq): counting every token", tuple(mask.shape))
            self._warned = True

    def _token_mask(self, num_tokens: int) -> torch.Tensor | None:
        mask = self._mask
        if mask is None:
            return None
        batch = mask.shape[0]
        if num_tokens % batch:
            return None
        seq = num_tokens // batch
        return mask[:, -seq:].reshape(-1).bool()

    def record(self, row: int, top_k_index: torch.Tensor, top_k_weights: torch.Tensor | None) -> None:
        """Add one layer's assignments: top_k_index (T, k), top_k_weights (T, k) or None."""
        if _in_backward():
            return
        with torch.no_grad():
            idx = top_k_index.reshape(-1, top_k_index.shape[-1])
            weights = top_k_weights.reshape(idx.shape) if top_k_weights is not None else None
            keep = self._token_mask(idx.shape[0])
            if keep is not None:
                keep = keep.to(idx.device)
                idx = idx[keep]
                weights = weights[keep] if weights is not None else None
            num_experts = self.counts.shape[1]
            flat = idx.reshape(-1)
            valid = (flat >= 0) & (flat < num_experts)  # expert-parallel sentinels are not experts
            self.counts[row] += torch.bincount(flat[valid], minlength=num_experts).cpu()
            if weights is not None:
                mass = torch.zeros(num_experts, dtype=torch.float64, device=flat.device)
                mass.index_add_(0, flat[valid], weights.reshape(-1)[valid].double())
                self.mass[row] += mass.cpu()
            self.tokens[row] += idx.shape[0]

    def _experts_hook(self, row: int) -> Callable[[nn.Module, tuple, dict[str, Any]], None]:
        def hook(module: nn.Module, args: tuple, kwargs: dict[str, Any]) -> None:
            top_k_index = args[1] if len(args) > 1 else kwargs.get("top_k_index", kwargs.get("router_indices"))
            weights = args[2] if len(args) > 2 else kwargs.get("top_k_weights", kwargs.get("routing_weights"))
            if isinstance(top_k_index, torch.Tensor):
                self.record(row, top_k_index, weights)

        return hook

    def _gate_hook(self, row: int) -> Callable[[nn.Module, tuple, object], None]:
        def hook(module: nn.Module, args: tuple, output: object) -> None:
            parsed = _parse_gate_output(output)
            if parsed is not None:
                self.record(row, *parsed)

        return hook

    # -- lifecycle -----------------------------------------------------------------------------------------------
    def __enter__(self) -> "ExpertActivationCounter":
        self._handles.append(self.model.register_forward_pre_hook(self._remember_mask, with_kwargs=True))
        for row, moe in enumerate(self.spec.moe_layers):
            if moe.kind is ExpertStorage.FUSED:
                experts = self.model.get_submodule(moe.experts_path)
                self._handles.append(experts.register_forward_pre_hook(self._experts_hook(row), with_kwargs=True))
            else:
                assert moe.router_path is not None  # a ModuleList MoE layer is counted at its router
                gate = self.model.get_submodule(moe.router_path)
                self._handles.append(gate.register_forward_hook(self._gate_hook(row)))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._mask = None

    def counts_by_layer(self) -> dict[int, list[int]]:
        return {m.layer_index: self.counts[i].tolist() for i, m in enumerate(self.spec.moe_layers)}

    def to_profile(self, mode: str, *, counts: torch.Tensor | None = None, mass: torch.Tensor | None = None,
                   tokens: torch.Tensor | None = None, **fields: Any) -> "ExpertProfile":
        """The counts as an `ExpertProfile` of `mode` ("warmup" / "forward"); `counts`, `mass`, `tokens` replace
        this process's own (e.g. by their sums over processes); `fields` are the profile's other fields
        (model_id, fingerprint, source, meta)."""
        from hellora.profiling.profile import ExpertProfile

        counts, tokens = (self.counts if counts is None else counts), (self.tokens if tokens is None else tokens)
        mass = self.mass if mass is None else mass
        return ExpertProfile(layers=[m.layer_index for m in self.spec.moe_layers], counts=counts.tolist(),
                             mass=mass.to(torch.float64).tolist(), tokens=tokens.tolist(),
                             num_experts=self.spec.num_experts, top_k=self.spec.top_k, mode=mode, **fields)
