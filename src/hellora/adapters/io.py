"""Saving and loading hellora adapters: `hellora_adapter.safetensors` + `hellora_adapter.json` in one folder.

The JSON records the adapter config, the adapted experts of every MoE layer, the base model reference and its
architecture fingerprint, so `load_adapter` rebuilds exactly the same wrappers and refuses another model.
The safetensors file holds every adapter parameter (LoRA A and B, frozen LoRI A included, DoRA's
`lora_magnitude`, LoRAMoE's `lora_router`) and, for LoRI-S, each B's bool `lora_B_mask`; nothing is pickled.
The folder is written as a whole: both files go into a temporary sibling folder that then replaces `out_dir`
(`hellora.utils.io.atomic_dir`), so a reader never sees new tensors beside an old record, and a failed save leaves
the previous adapter untouched.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from hellora.adapters.accounting import count_parameters
from hellora.adapters.config import AdapterConfig
from hellora.adapters.inject import AdapterState, adapter_parameters, attach_adapters
from hellora.adapters.lori import LoRIDAdapter, lori_s_masks, mask_buffers, mask_name
from hellora.models.families import describe_moe_model
from hellora.models.fingerprint import config_fingerprint
from hellora.placement import HotExpertPlacement, saved_strategy
from hellora.utils.errors import HelloraError
from hellora.utils.io import atomic_dir, atomic_write, atomic_write_json, read_json
from hellora.utils.meta import run_metadata
from hellora.utils.records import integer, integer_list, layer_key, mapping, optional_text
from hellora.choices import Variant

WEIGHTS = "hellora_adapter.safetensors"
CONFIG = "hellora_adapter.json"
FORMAT = "hellora.adapter/1"


def adapter_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """Full name -> CPU tensor of everything an adapter file holds: adapter parameters and LoRI-S masks."""
    tensors = {n: p.detach().to("cpu").contiguous() for n, p in adapter_parameters(model).items()}
    tensors.update({mask_name(n): m.detach().to("cpu").contiguous()
                    for n, m in mask_buffers(model).items()})
    return tensors


def adapter_state(model: nn.Module) -> AdapterState:
    state = getattr(model, "hellora_adapter", None)
    if state is None:
        raise HelloraError("this model has no hellora adapters attached (attach_adapters or load_adapter first)")
    return state


def save_adapter(model: nn.Module, out_dir: str | Path, *, base_model: str | None = None, overwrite: bool = False,
                 extra: dict | None = None) -> Path:
    """Write the model's adapters to `out_dir` in one atomic swap.

    A non-empty `out_dir` is refused unless `overwrite`, which replaces the whole folder (anything else in it goes
    too), so the folder is only ever the complete old adapter or the complete new one.
    """
    out = Path(out_dir)
    state = adapter_state(model)
    if not overwrite and (out / CONFIG).exists():
        raise HelloraError(f"{out} already holds an adapter ({CONFIG}); choose another folder or pass overwrite")
    if not overwrite and out.is_dir() and any(out.iterdir()):
        raise HelloraError(f"{out} is not empty; choose another folder or pass overwrite")
    tensors = adapter_tensors(model)
    record = {
        "format": FORMAT,
        "base_model": base_model or state.model_id,
        "model_type": getattr(model.config, "model_type", None),
        "fingerprint": state.fingerprint,
        "adapter": state.config.to_dict(),
        "experts": {str(layer): ids for layer, ids in state.experts.items()},
        "router_adapted": state.router_adapted,
        "placement": state.placement,
        "trainable_parameters": count_parameters(model)["trainable"],
        "meta": run_metadata(state.config.seed),
        **({"model": {"name": base_model}} if base_model else {}),  # what eval --adapter and export rebuild
        **(extra or {}),
    }
    with atomic_dir(out) as tmp:
        atomic_write(tmp / WEIGHTS, lambda path: save_file(tensors, path, metadata={"format": FORMAT}))
        atomic_write_json(tmp / CONFIG, record)
    return out


def check_adapter_record(record: object, where: str) -> dict:
    """An adapter record (`hellora_adapter.json`) checked as untrusted input, one `HelloraError` line per failure
    naming the field: format, the adapter config's presence, expert keys that are layer indices with integer
    expert ids, text where text belongs, and the base-model spec (`model`: name, overrides, tokenizer,
    trust_remote_code as a JSON bool). Shapes and LoRI-S masks are checked against the model by
    `check_adapter_tensors`, layers and expert ranges by `attach_from_record`."""
    record = mapping(record, where)
    if record.get("format") != FORMAT:
        raise HelloraError(f"{where}: not a hellora adapter (expected format {FORMAT!r})")
    missing = [k for k in ("adapter", "experts", "fingerprint") if k not in record]
    if missing:
        raise HelloraError(f"{where}: missing field {missing[0]!r}")
    mapping(record["adapter"], f"{where}: field 'adapter'")
    for key, ids in mapping(record["experts"], f"{where}: field 'experts'").items():
        layer = layer_key(key, f"{where}: field 'experts'")
        integer_list(ids, f"{where}: experts of layer {layer}", low=0)
    for key in ("fingerprint", "base_model", "model_type"):
        optional_text(record.get(key), f"{where}: field {key!r}")
    if record.get("router_adapted") is not None and not isinstance(record["router_adapted"], bool):
        raise HelloraError(f"{where}: field 'router_adapted' has the wrong type ({type(record['router_adapted']).__name__})")
    placement = mapping(record.get("placement"), f"{where}: field 'placement'", optional=True)
    optional_text(placement.get("strategy"), f"{where}: field 'placement.strategy'")
    integer(record.get("trainable_parameters"), f"{where}: field 'trainable_parameters'", low=0, optional=True)
    spec = mapping(record.get("model"), f"{where}: field 'model'", optional=True)
    for key in ("name", "tokenizer"):
        optional_text(spec.get(key), f"{where}: field 'model.{key}'")
    mapping(spec.get("overrides"), f"{where}: field 'model.overrides'", optional=True)
    if spec.get("trust_remote_code") is not None and not isinstance(spec["trust_remote_code"], bool):
        raise HelloraError(f"{where}: field 'model.trust_remote_code' must be true or false, got "
                           f"{spec['trust_remote_code']!r}")
    return record


def read_adapter_record(adapter_dir: str | Path) -> dict:
    path = Path(adapter_dir) / CONFIG
    return check_adapter_record(read_json(path, "adapter config"), str(path))


def check_adapter_tensors(model: nn.Module, tensors: dict[str, torch.Tensor], where: str) -> None:
    """The saved tensors are exactly the adapter the record describes, attached to `model`: every parameter and
    LoRI-S mask present (a record claiming LoRI-S without its masks is refused, not exported unmasked), nothing
    else, each of the attached shape, masks bool and parameters floating point."""
    params: dict[str, torch.Tensor] = dict(adapter_parameters(model))
    masks = {mask_name(n): m for n, m in mask_buffers(model).items()}
    expected = {**params, **masks}
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise HelloraError(f"{where}: weights do not match its config "
                           f"({'missing ' + missing[0] if missing else 'unexpected ' + unexpected[0]})")
    for name, param in expected.items():
        if tuple(tensors[name].shape) != tuple(param.shape):
            raise HelloraError(f"{where}: {name} has shape {tuple(tensors[name].shape)}, expected {tuple(param.shape)}")
        if name in masks and tensors[name].dtype != torch.bool:
            raise HelloraError(f"{where}: LoRI-S mask {name} must be bool, got {tensors[name].dtype}")
        if name in params and not tensors[name].is_floating_point():
            raise HelloraError(f"{where}: {name} must be floating point, got {tensors[name].dtype}")


def read_adapter_tensors(adapter_dir: str | Path) -> dict[str, torch.Tensor]:
    path = Path(adapter_dir) / WEIGHTS
    if not path.is_file():
        raise HelloraError(f"adapter weights not found: {path}")
    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises its own error type for a damaged file
        raise HelloraError(f"adapter weights {path} cannot be read ({e})") from None


def attach_from_record(model: nn.Module, record: dict, where: str = "adapter") -> nn.Module:
    """Attach empty adapters shaped as `record` says, after checking it was made for this model."""
    fingerprint = config_fingerprint(model.config)
    if record.get("fingerprint") != fingerprint:
        raise HelloraError(
            f"{where} was made for another model ({record.get('base_model')!r}, fingerprint "
            f"{record.get('fingerprint')}); this model has fingerprint {fingerprint}"
        )
    config = AdapterConfig.from_dict(record["adapter"], where=f"{where}: adapter")
    experts = {int(layer): ids for layer, ids in record["experts"].items()}  # checked by check_adapter_record
    placement = None
    if config.rules.adapts_hot_experts:
        spec = describe_moe_model(model)
        for layer, ids in experts.items():
            integer_list(ids, f"{where}: experts of layer {layer}", low=0, below=spec.num_experts)
        placement = HotExpertPlacement(experts, spec.num_experts,
                                       saved_strategy((record.get("placement") or {}).get("strategy")),
                                       fingerprint=fingerprint)
        placement.check_fits(spec.moe_layer_indices, spec.num_experts, fingerprint, f"{where}: field 'experts'")
    return attach_adapters(model, config, placement, init_lori=False)


def read_lori_d(adapter_dir: str | Path) -> LoRIDAdapter:
    """The finished LoRI-D adapter in `adapter_dir` (its record and tensors), which a LoRI-S run starts from."""
    record = read_adapter_record(adapter_dir)
    variant = record.get("adapter", {}).get("variant", "none")
    if variant != Variant.LORI_D:
        raise HelloraError(f"adapter.lori_from: {adapter_dir} is a {variant!r} adapter; LoRI-S starts from a "
                           f"finished LoRI-D adapter (variant 'lori_d'), whose A is still its random init")
    return LoRIDAdapter(record, read_adapter_tensors(adapter_dir), str(adapter_dir))


def lori_mask_from_adapter(adapter_dir: str | Path, density: float = 0.1) -> dict[str, torch.Tensor]:
    """B parameter name -> bool mask of the LoRI-D adapter in `adapter_dir` (`hellora.adapters.lori.lori_s_masks`)."""
    if not 0.0 < density <= 1.0:
        raise HelloraError(f"adapter.lori_density: must be in (0, 1], got {density!r}")
    return lori_s_masks(read_lori_d(adapter_dir), density)


def load_adapter(model: nn.Module, adapter_dir: str | Path) -> nn.Module:
    """Attach the adapters saved in `adapter_dir` to `model` (frozen base) and load their weights."""
    record = read_adapter_record(adapter_dir)
    attach_from_record(model, record, where=f"adapter {adapter_dir}")
    tensors = read_adapter_tensors(adapter_dir)
    check_adapter_tensors(model, tensors, f"adapter {adapter_dir}")
    params: dict[str, torch.Tensor] = dict(adapter_parameters(model))
    params.update({mask_name(n): m for n, m in mask_buffers(model).items()})
    with torch.no_grad():
        for name, param in params.items():
            param.copy_(tensors[name])
    if not any(p.is_meta for p in model.parameters()):
        from hellora.quant.run import apply_recorded_storage

        apply_recorded_storage(model, record)  # the experts stored as in training (keep: nothing to do)
    return model

