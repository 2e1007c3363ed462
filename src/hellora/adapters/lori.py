"""LoRI (Zhang et al. 2025) on hellora's adapters: LoRI-D freezes A, LoRI-S also sparsifies B.

    LoRI-D  A (r, in) stays at its random init (requires_grad False); only B (out, r) trains from 0.
    LoRI-S  given a finished LoRI-D adapter: one global mask M keeping the top `density` share of |B| over ALL
            B matrices of the model (one threshold); a fresh run then starts from B = 0 with the LoRI-D adapter's
            A (frozen) and trains B only where M is set:  y = x W^T + s * x A^T (B * M)^T.

M is a bool buffer `lora_B_mask` next to each `lora_B` (a (K, out, r) stack for fused experts); every adapter
reads B through `base.effective_b` = B * M, so masked-out entries never reach the output and their gradient is
exactly zero: starting at zero, they stay zero under AdamW (decoupled weight decay of 0 is 0). A is a frozen
parameter, so optimizers built from `requires_grad` parameters never see it.

HELLoRI-D / HELLoRI-S are the same variants with method "hellora": the pairs exist only on hot experts (plus
attention and router), so cold experts stay exact base weights and the mask is computed over the hot pairs only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from hellora.adapters.config import AdapterConfig
from hellora.methods.counts import lori_keep_count
from hellora.models.fingerprint import config_fingerprint
from hellora.utils.errors import HelloraError

MASK = "lora_B_mask"


@dataclass(frozen=True)
class LoRIDAdapter:
    """A finished LoRI-D adapter, as a LoRI-S run starts from it (`hellora.adapters.io.read_lori_d` reads one).

    record:  its `hellora_adapter.json` content (config, experts per layer, fingerprint, placement)
    tensors: full parameter name -> tensor of its safetensors file (every lora_A and lora_B)
    source:  where it was read from, for messages
    """

    record: dict
    tensors: dict[str, torch.Tensor]
    source: str

    @property
    def config(self) -> AdapterConfig:
        return AdapterConfig.from_dict(self.record["adapter"], where=f"adapter.lori_from: {self.source}")

    @property
    def experts(self) -> dict[int, list[int]]:
        return {int(layer): list(ids) for layer, ids in self.record["experts"].items()}

    def b_tensors(self) -> dict[str, torch.Tensor]:
        return {n: t for n, t in self.tensors.items() if n.rsplit(".", 1)[-1] == "lora_B"}


def lora_pairs(model: nn.Module) -> dict[str, nn.Module]:
    """Module path -> every module owning a `lora_A` / `lora_B` parameter pair, in model order."""
    return {name: m for name, m in model.named_modules()
            if "lora_A" in m._parameters and "lora_B" in m._parameters}


def _pair(module: nn.Module) -> tuple[nn.Parameter, nn.Parameter]:
    """(A, B) of a module `lora_pairs` lists (it has both)."""
    a, b = module._parameters["lora_A"], module._parameters["lora_B"]
    assert a is not None and b is not None
    return a, b


def _key(path: str, leaf: str) -> str:
    return f"{path}.{leaf}" if path else leaf


def apply_lori(model: nn.Module, masked: bool) -> None:
    """Freeze every A; when `masked` (LoRI-S) also add an all-False `lora_B_mask` per B, to be filled by
    `set_lori_masks`."""
    for module in lora_pairs(model).values():
        lora_a, lora_b = _pair(module)
        lora_a.requires_grad_(False)
        if masked and MASK not in module._buffers:
            module.register_buffer(MASK, torch.zeros(lora_b.shape, dtype=torch.bool, device=lora_b.device))


def global_topk_masks(tensors: dict[str, torch.Tensor], density: float) -> dict[str, torch.Tensor]:
    """name -> bool mask keeping exactly `lori_keep_count(total, density)` largest |entries| over all tensors.

    One threshold for the whole set (the k-th largest |value|); ties at the threshold are kept in name order, then
    flat index order, so the result is deterministic and its size exact.
    """
    names = sorted(tensors)
    flat = torch.cat([tensors[n].detach().float().abs().reshape(-1) for n in names])
    total = flat.numel()
    keep = lori_keep_count(total, density)
    if keep >= total:
        chosen = torch.ones(total, dtype=torch.bool)
    else:
        threshold = torch.kthvalue(flat, total - keep + 1).values
        chosen = flat > threshold
        ties = torch.nonzero(flat == threshold).flatten()[: keep - int(chosen.sum())]
        chosen[ties] = True
    masks, offset = {}, 0
    for n in names:
        size = tensors[n].numel()
        masks[n] = chosen[offset: offset + size].reshape(tensors[n].shape).clone()
        offset += size
    return masks


def lori_s_masks(lori_d: LoRIDAdapter, density: float = 0.1) -> dict[str, torch.Tensor]:
    """B parameter name -> bool mask of a LoRI-D adapter: its top `density` share of |B| over all B matrices,
    one global threshold."""
    if not 0.0 < density <= 1.0:
        raise HelloraError(f"adapter.lori_density: must be in (0, 1], got {density!r}")
    b = lori_d.b_tensors()
    if not b:
        raise HelloraError(f"adapter.lori_from: {lori_d.source} holds no lora_B tensors")
    return global_topk_masks(b, density)


@torch.no_grad()
def set_lori_masks(model: nn.Module, masks: dict[str, torch.Tensor], where: str = "LoRI-S masks") -> None:
    """Copy `masks` (B name -> bool) into the model's `lora_B_mask` buffers and zero B outside them."""
    pairs = {_key(path, "lora_B"): m for path, m in lora_pairs(model).items()}
    if set(masks) != set(pairs):
        extra, missing = sorted(set(masks) - set(pairs)), sorted(set(pairs) - set(masks))
        raise HelloraError(f"{where}: masks do not match the model's adapters ("
                           + (f"missing {missing[0]}" if missing else f"unknown {extra[0]}") + ")")
    for name, module in pairs.items():
        buffer = module._buffers.get(MASK)
        if buffer is None:  # (never registered as None)
            raise HelloraError(f"{where}: {name} has no mask buffer (attach with variant 'lori_s')")
        lora_b = _pair(module)[1]
        mask = masks[name].to(device=lora_b.device, dtype=torch.bool)
        if mask.shape != lora_b.shape:
            raise HelloraError(f"{where}: mask of {name} has shape {tuple(mask.shape)}, expected "
                               f"{tuple(lora_b.shape)}")
        buffer.copy_(mask)
        lora_b.mul_(mask)


@torch.no_grad()
def init_lori_s(model: nn.Module, lori_d: LoRIDAdapter, density: float) -> None:
    """Start a LoRI-S run on an adapted `model`: A from the LoRI-D adapter `lori_d`, its global mask."""
    state: Any = model.hellora_adapter  # an inject.AdapterState (inject imports this module)
    record, where = lori_d.record, f"adapter.lori_from: {lori_d.source}"
    if record.get("fingerprint") != config_fingerprint(model.config):
        raise HelloraError(f"{where} was made for another model ({record.get('base_model')!r})")
    ours, theirs = state.config, lori_d.config
    for key in ("method", "r", "targets"):
        if getattr(ours, key) != getattr(theirs, key):
            raise HelloraError(f"{where}: the LoRI-D adapter has {key}={getattr(theirs, key)!r}, this run "
                               f"{key}={getattr(ours, key)!r}; LoRI-S must reuse the LoRI-D adapter's pairs")
    if state.experts != lori_d.experts:
        raise HelloraError(f"{where}: the LoRI-D adapter adapts other experts than this placement; "
                           "attach LoRI-S with the LoRI-D run's placement (or none: it is then taken from there)")
    pairs = lora_pairs(model)
    a_names = {_key(path, "lora_A"): m for path, m in pairs.items()}
    missing = sorted(set(a_names) - set(lori_d.tensors))
    if missing:
        raise HelloraError(f"{where} has no {missing[0]}")
    for name, module in a_names.items():
        lora_a = _pair(module)[0]
        if lori_d.tensors[name].shape != lora_a.shape:
            raise HelloraError(f"{where}: {name} has shape {tuple(lori_d.tensors[name].shape)}, expected "
                               f"{tuple(lora_a.shape)}")
        lora_a.copy_(lori_d.tensors[name])
    set_lori_masks(model, lori_s_masks(lori_d, density), where="adapter.lori_from")


def mask_name(b_name: str) -> str:
    """Full name of the mask buffer of the B parameter `b_name` (as saved in adapter files)."""
    return f"{b_name}_mask"


def mask_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    """B parameter name -> its LoRI-S mask buffer."""
    return {_key(path, "lora_B"): mask for path, m in lora_pairs(model).items()
            if (mask := m._buffers.get(MASK)) is not None}  # (a mask buffer is never registered as None)
