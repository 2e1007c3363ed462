"""Fully sharded training (torch FSDP2, `fully_shard`) of adapters on a frozen MoE backbone.

What is sharded, and why it is done once, before any adapter exists:

    base weights      every decoder layer is one `fully_shard` unit, the rest (embeddings, final norm, lm_head)
                      the root unit: each of W processes holds 1/W of every frozen weight (dim-0 shards, DTensor);
                      a unit's weights are all-gathered just before its forward and again before its backward,
                      and freed after each
    adapters          attached after sharding, inside the layers (LoRALinear around q_proj, HotExpertsLoRA around
                      the fused experts, ...); plain fp32 tensors replicated on every process: their gradients
                      are averaged with one bucketed all-reduce per optimizer step, so AdamW state and
                      checkpoints are those of a single process (`loop/checkpoint.py` unchanged)

The base is sharded once per run and never re-wrapped: the warm-up's all-expert LoRA is attached, trained and
removed, then the hot-expert adapters are attached, all on the same sharded base. Adapter code runs inside its
layer's forward, where FSDP2 has already replaced every base weight of that layer by its gathered (unsharded)
tensor, so the hot-expert autograd op (`kernels/subset_lora.py`) and the shared q/k/v A product
(`adapters/shared_input.py`) see full weights, and their backward sees them again (FSDP2 re-gathers before the
layer's backward). Adapters are 0.1-2 % of a backbone's parameters, so replicating them costs little memory
(see `hellora.memory_plan`) and keeps the hot-expert kernels free of sharded operands.

Mixed precision: on GPU with bf16 the gathered base weights are bf16 (`MixedPrecisionPolicy(param_dtype=bf16,
reduce_dtype=fp32)`), adapters stay fp32 masters cast to the activations' dtype, and their gradients are reduced
in fp32; on CPU (gloo) everything is fp32.

Not supported (refused with a message naming the field): full fine-tuning (every base weight would train), DoRA
(its magnitude is initialised from the full base weights outside any forward, where they are sharded), a forward
profile inside a sharded run (processes would run different numbers of sharded forwards) and fp16.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Iterable, TypeGuard

import torch
import torch.distributed as dist
from torch import nn

from hellora.utils.errors import HelloraError
from hellora.methods.registry import get_method
from hellora.choices import Method, MixedPrecision, ProfileMode, Variant

if TYPE_CHECKING:
    from accelerate import Accelerator
    from torch.distributed.fsdp import MixedPrecisionPolicy
    from torch.distributed.tensor import DTensor

    from hellora.config import TrainConfig

log = logging.getLogger(__name__)

BUCKET_BYTES = 64 * 2**20  # gradient all-reduce bucket


def fsdp_requested(train_cfg: TrainConfig | None, accelerator: Accelerator) -> bool:
    """`train.fsdp: true`, or an `accelerate launch` with an FSDP config (configs/accelerate/fsdp.yaml)."""
    return bool(getattr(train_cfg, "fsdp", False)) or accelerator.distributed_type.name == "FSDP"


def check_fsdp_supported(method: str, variant: str, profile_mode: str = "none", mixed_precision: str = "no") -> None:
    """Refuse what FSDP cannot train here, naming the field, before anything is written."""
    if mixed_precision == MixedPrecision.FP16:  # a loss scaler would need unscaling before the replicated clipping
        raise HelloraError("train.mixed_precision: fp16 is not supported under FSDP; use bf16 or no")
    rules = get_method(Method.parse(method, "adapter.method"), Variant.parse(variant, "adapter.variant"))
    if rules.fsdp_refusal:
        raise HelloraError(f"train.fsdp: {rules.fsdp_refusal}")
    if rules.adapts_hot_experts and profile_mode == ProfileMode.FORWARD:
        raise HelloraError("train.fsdp: profile.mode forward is not supported under FSDP (processes would run "
                           "different numbers of sharded forwards); use profile.mode warmup, or profile with "
                           "`hellora profile` and set profile.path")


def is_sharded(model: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def mixed_precision_policy(mixed_precision: str, device: torch.device) -> MixedPrecisionPolicy | None:
    """bf16 gathered weights with fp32 reduction on an accelerator; None (keep the weights' dtype) otherwise."""
    from torch.distributed.fsdp import MixedPrecisionPolicy

    if mixed_precision == MixedPrecision.BF16 and device.type != "cpu":
        return MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    return None


def shard_frozen_base(model: nn.Module, accelerator: Accelerator, mixed_precision: str = "no") -> nn.Module:
    """`fully_shard` every decoder layer, then the root, over all processes; the model must carry no adapters.

    Every base weight is frozen first (hellora never trains them) and the model moves to the process's device
    shard by shard. With one process there is nothing to shard and the model is returned unchanged.
    Returns the same object (its class becomes FSDP's subclass of it).
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    from hellora.models.families import _find_decoder_layers

    if getattr(model, "hellora_adapter", None) is not None:
        raise HelloraError("shard_frozen_base: the model already carries adapters; shard the base before attaching")
    world = accelerator.num_processes
    if world == 1 or not dist.is_initialized():
        log.info("FSDP with one process: nothing to shard")
        return model
    if is_sharded(model):
        return model
    for p in model.parameters():
        p.requires_grad_(False)
    device = accelerator.device
    mesh = init_device_mesh(device.type, (world,))
    kwargs: dict[str, Any] = {"mesh": mesh}
    plugin = getattr(accelerator.state, "fsdp_plugin", None)  # accelerate launch with configs/accelerate/fsdp.yaml
    if plugin is not None and getattr(plugin, "reshard_after_forward", None) is not None:
        kwargs["reshard_after_forward"] = bool(plugin.reshard_after_forward)
    policy = mixed_precision_policy(mixed_precision, device)
    if policy is not None:
        kwargs["mp_policy"] = policy
    _, layers = _find_decoder_layers(model)
    for layer in layers:
        fully_shard(layer, **kwargs)
    fully_shard(model, **kwargs)
    local, full = parameter_bytes(model)
    log.info("FSDP over %d processes: this process holds %d of %d parameter bytes", world, local, full)
    return model


def parameter_bytes(model: nn.Module) -> tuple[int, int]:
    """(bytes of parameters this process holds, bytes of all parameters unsharded)."""
    from torch.distributed.tensor import DTensor

    local = full = 0
    for p in model.parameters():
        size = p.element_size()
        full += p.numel() * size
        local += (p.to_local().numel() if isinstance(p, DTensor) else p.numel()) * size
    return local, full


def average_replicated_gradients(params: Iterable[nn.Parameter], world: int) -> None:
    """All-reduce (mean) the gradients of replicated trainable tensors, in buckets of BUCKET_BYTES, in the
    given order (the same on every process).

    A parameter with a gradient on some processes only (e.g. a hot expert that got no token here) contributes
    zeros where it has none; one with no gradient anywhere keeps none, so AdamW skips it as one process would.
    """
    if world == 1:
        return
    plain = [p for p in params if not _is_dtensor(p)]
    if not plain:
        return
    has_grad = torch.tensor([p.grad is not None for p in plain], dtype=torch.int32, device=plain[0].device)
    dist.all_reduce(has_grad)
    plain = [p for p, n in zip(plain, has_grad.tolist()) if n > 0]
    for p in plain:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    bucket: list[nn.Parameter] = []
    size = 0
    for p in plain:
        bucket.append(p)
        size += p.numel() * 4
        if size >= BUCKET_BYTES:
            _reduce_bucket(bucket, world)
            bucket, size = [], 0
    if bucket:
        _reduce_bucket(bucket, world)


def _reduce_bucket(params: list[nn.Parameter], world: int) -> None:
    """One fp32 all-reduce of the bucket's concatenated gradients, averaged, written back in place."""
    flat = torch.cat([_grad(p).reshape(-1).float() for p in params])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for p in params:
        n = _grad(p).numel()
        _grad(p).copy_(flat[offset:offset + n].view_as(_grad(p)))
        offset += n


def _grad(p: nn.Parameter) -> torch.Tensor:
    assert p.grad is not None  # average_replicated_gradients gives every bucketed parameter one
    return p.grad


def _is_dtensor(t: torch.Tensor) -> TypeGuard[DTensor]:
    from torch.distributed.tensor import DTensor

    return isinstance(t, DTensor)


def clip_grad_norm_(params: Iterable[nn.Parameter], max_norm: float) -> torch.Tensor:
    """Clip to a total L2 norm of `max_norm`; returns the norm before clipping (a plain tensor, the same on every
    process).

    Gradients may be replicated tensors (already averaged: every process computes the same norm) or DTensor
    shards: their norm is reduced over the mesh by DTensor (`full_tensor`), so no process clips with the norm of
    its own shard only. Mixing both sums the squares of the two parts.
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros(())
    sharded = [g for g in grads if _is_dtensor(g)]
    plain = [g for g in grads if not _is_dtensor(g)]
    norms = []
    if plain:
        norms.append(torch.nn.utils.get_total_norm(plain, 2.0))
    if sharded:
        norm = torch.nn.utils.get_total_norm(sharded, 2.0)
        norms.append((norm.full_tensor() if _is_dtensor(norm) else norm).to(grads[0].device))
    total = norms[0] if len(norms) == 1 else torch.linalg.vector_norm(torch.stack([n.float() for n in norms]))
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)  # as torch.nn.utils.clip_grads_with_norm_
    for g in plain:
        g.mul_(coef.to(g.device))
    for g in sharded:
        g.mul_(float(coef))
    return total
