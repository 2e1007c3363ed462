"""Device-independent costs of one training step, measured: FLOPs, bytes saved for backward, bytes of state.

    costs = measure_step_costs(model, batch, step)      # one forward + backward (+ optimizer step)

- FLOPs: torch's `FlopCounterMode` over the forward and the backward separately, per module as well. torch 2.13
  has no FLOP formula for `aten._grouped_mm` (what transformers' experts and hellora's expert op run), so one is
  registered here (`grouped_mm_flops`): 2 * rows * in * out for a (S, in) x (G, in, out) product, whatever the
  offsets (every row meets one group's weight), and 2 * M * K * N for the 2-D x 2-D form whose offsets split K.
  Only matrix products count (as in the paper's accounting); elementwise work, softmax and the optimizer do not.
- Saved for backward: every tensor autograd keeps for the backward (`saved_tensors_hooks`), counted once per
  storage, minus the model's own parameters and buffers (they exist whether or not anything is saved).
- State: bytes of all parameters, of the trainable ones' gradients after the backward, of the optimizer's state
  after its first step (AdamW: two moments per trainable element, plus a step count).

Adapter FLOPs per token are the forward FLOPs inside the experts modules with adapters minus the same modules
without, over the batch's tokens: that isolates the expert adapters, the part `hellora flops` computes from the
routing (`hellora.flops.adapter_flops`), called with the same routing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterable, Sequence

import torch
from torch.utils.flop_counter import FlopCounterMode

from hellora.profiling.profile import ExpertProfile

if TYPE_CHECKING:
    from torch import nn

    from hellora.models.families import MoEModelSpec


def grouped_mm_flops(a_shape: Sequence[int], b_shape: Sequence[int], *args: object,
                     out_shape: Sequence[int] | None = None, **kwargs: object) -> int:
    """FLOPs of `aten._grouped_mm(a, b, offs)` from the operand shapes (torch registers no formula for it)."""
    if len(a_shape) == 2 and len(b_shape) == 3:  # (S, K) rows, each against its group's (K, N)
        return 2 * a_shape[0] * a_shape[1] * b_shape[2]
    if len(a_shape) == 2 and len(b_shape) == 2:  # (M, K) x (K, N), offsets split K into groups
        return 2 * a_shape[0] * a_shape[1] * b_shape[1]
    if len(a_shape) == 3 and len(b_shape) == 3:  # batched
        return 2 * a_shape[0] * a_shape[1] * a_shape[2] * b_shape[2]
    # (G, M, K) x (K, N_total), offsets split N: every output column meets one group's M x K block
    return 2 * a_shape[1] * a_shape[2] * b_shape[1]


def _flop_mode() -> FlopCounterMode:
    return FlopCounterMode(display=False, custom_mapping={torch.ops.aten._grouped_mm: grouped_mm_flops})


def _module_flops(mode: FlopCounterMode, prefix: str) -> dict[str, int]:
    """Forward FLOPs per module name (without the root class prefix `FlopCounterMode` adds)."""
    out = {}
    for name, ops in mode.get_flop_counts().items():
        if name.startswith(prefix + "."):
            out[name[len(prefix) + 1:]] = int(sum(ops.values()))
    return out


class _SavedBytes:
    """saved_tensors_hooks that add up the distinct storages autograd keeps for the backward."""

    def __init__(self, exclude: set[int]) -> None:
        self.exclude = exclude
        self.seen: set[int] = set()
        self.bytes = 0

    def pack(self, t: torch.Tensor):
        if t.device.type != "meta":
            storage = t.untyped_storage()
            ptr = storage.data_ptr()
            if ptr not in self.exclude and ptr not in self.seen:
                self.seen.add(ptr)
                self.bytes += storage.nbytes()
        return t

    @staticmethod
    def unpack(t: torch.Tensor) -> torch.Tensor:
        return t


def _bytes(tensors) -> int:
    return int(sum(t.numel() * t.element_size() for t in tensors))


def measure_step_costs(model: nn.Module, step: Callable[[], torch.Tensor],
                       optimizer: torch.optim.Optimizer | None) -> dict:
    """One step, measured: `step()` returns the loss of one forward; then its backward and `optimizer.step()`.

    Returns forward / backward / total FLOPs, forward FLOPs per module (`module_forward_flops`), bytes saved for
    backward, and parameter, gradient and optimizer-state bytes.
    """
    own = {t.untyped_storage().data_ptr() for t in (*model.parameters(), *model.buffers())}
    saved = _SavedBytes(own)
    with _flop_mode() as fwd, torch.autograd.graph.saved_tensors_hooks(saved.pack, saved.unpack):
        loss = step()
    with _flop_mode() as bwd:
        loss.backward()
    trainable = [p for p in model.parameters() if p.requires_grad]
    grads = _bytes(p.grad for p in trainable if p.grad is not None)
    state = 0
    if optimizer is not None:
        optimizer.step()
        state = _bytes(v for s in optimizer.state.values() for v in s.values() if isinstance(v, torch.Tensor))
        optimizer.zero_grad(set_to_none=True)
    forward, backward = int(fwd.get_total_flops()), int(bwd.get_total_flops())
    return {
        "forward_flops": forward, "backward_flops": backward, "step_flops": forward + backward,
        "saved_for_backward_bytes": saved.bytes,
        "param_bytes": _bytes(model.parameters()), "trainable_param_bytes": _bytes(trainable),
        "grad_bytes": grads, "optimizer_state_bytes": state,
        "module_forward_flops": _module_flops(fwd, type(model).__name__),
    }


def expert_adapter_flops_per_token(adapted: dict[str, int], frozen: dict[str, int], experts_paths: Iterable[str], tokens: int,
                                   prefix: str = "") -> float:
    """Measured forward FLOPs per token of the expert adapters: experts modules adapted minus frozen."""
    extra = sum(adapted.get(prefix + p, 0) - frozen.get(p, 0) for p in experts_paths)
    return extra / tokens


def routing_profile(spec: MoEModelSpec, routing: dict[int, tuple]) -> ExpertProfile:
    """The benchmark's fixed routing as an `ExpertProfile` (counts of each layer's top_k_index)."""
    counts, tokens = [], []
    for moe in spec.moe_layers:
        index = routing[moe.layer_index][1]
        counts.append(torch.bincount(index.reshape(-1), minlength=moe.num_experts).tolist())
        tokens.append(int(index.shape[0]))
    return ExpertProfile(layers=[m.layer_index for m in spec.moe_layers], counts=counts, mass=[], tokens=tokens,
                         num_experts=spec.num_experts, top_k=spec.top_k, mode="forward")
