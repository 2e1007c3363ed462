"""`hellora export --format vllm`: a LoRA folder in the per-expert (2D) MoE layout vLLM's MoE-LoRA loads natively.

Why a layout of its own: the stock-PEFT export (`--format peft`) stores each fused expert parameter as one rank-2r
pair over all E experts (`experts.base_layer` = gate_up_proj, `experts` = down_proj). vLLM serves that only with
`enable_mixed_moe_lora_format=True` on the engine and `is_3d_lora_weight=True` on the LoRA request, converts it to
per-expert tensors when it loads, and then runs gate and up at rank 2r (both halves reuse the one rank-2r A) and
down at 2r (zero-padded), so `max_lora_rank` must be >= 2r. This format writes what vLLM's 2D wrapper
(`FusedMoEWithLoRA`) stacks directly, one pair per expert and projection, at the adapter's own rank r:

    base_model.model.<layer>.mlp.experts.<e>.<gate>.lora_A.weight   (r, hidden)        lora_B (intermediate, r)
    base_model.model.<layer>.mlp.experts.<e>.<up>.lora_A.weight     (r, hidden)        lora_B (intermediate, r)
    base_model.model.<layer>.mlp.experts.<e>.<down>.lora_A.weight   (r, intermediate)  lora_B (hidden, r)

with <gate>/<up>/<down> the names vLLM's model uses for its per-expert checkpoint weights (gate_proj / up_proj /
down_proj; Mixtral: w1 / w3 / w2). Attention Linears, dense MLP Linears and routers (`mlp.gate`, a ReplicatedLinear
in vLLM) are plain `<module>.lora_{A,B}.weight` pairs, also at rank r, so the whole adapter has one r and one
alpha (no rank_pattern), and vLLM runs it with `max_lora_rank >= r` and no MoE format flags.

Cold experts are written as zero pairs: vLLM's `pack_moe` requires every expert of an adapted layer to carry a
LoRA (it asserts so), and its fused MoE-LoRA kernel skips only layers with no MoE LoRA at all and experts outside
an expert-parallel rank, not zero pairs: every (token, expert) pair routed in an adapted layer runs the shrink and
expand GEMMs, cold experts included (docs/serving.md).

Refused, as for PEFT (the method's `peft_refusal`): LoRAMoE, DoRA and full fine-tuning; also interleaved gate_up
layouts (GPT-OSS), whose per-expert names vLLM does not use: serve those from `--format peft` with the flags above.
LoRI-D / LoRI-S export as plain LoRA (B times its mask). A `hellora_placement.json` sidecar keeps the placement.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file
from torch import nn

from hellora.adapters.experts import HotExpertsLoRA
from hellora.adapters.inject import adapter_layers
from hellora.adapters.io import adapter_state
from hellora.adapters.linear import LoRALinear
from hellora.adapters.lori import mask_name
from hellora.adapters.router import RouterLoRA
from hellora.utils.errors import HelloraError
from hellora.utils.io import atomic_dir, atomic_write_json

__all__ = ["VLLM_FORMAT", "expert_weight_names", "export_vllm"]

VLLM_FORMAT = "hellora.vllm-2d-moe-lora/1"

#: vLLM's per-expert checkpoint names (gate, up, down) where a family does not use gate_proj / up_proj / down_proj.
_EXPERT_NAMES = {"mixtral": ("w1", "w3", "w2")}
_DEFAULT_EXPERT_NAMES = ("gate_proj", "up_proj", "down_proj")


def expert_weight_names(model_type: str) -> tuple[str, str, str]:
    """(gate, up, down): the names vLLM's expert mapping gives one expert's projections for `model_type`."""
    return _EXPERT_NAMES.get(model_type, _DEFAULT_EXPERT_NAMES)


def _refuse_unsupported(model: nn.Module) -> None:
    """What a plain LoRA folder cannot hold, vLLM cannot serve either: the method's PEFT refusal applies as is."""
    rules = adapter_state(model).config.rules
    if rules.peft_refusal:
        raise HelloraError(f"vLLM export: a LoRA folder cannot hold {rules.peft_refusal}; "
                           + ("write a merged checkpoint (--format merged) and serve that" if rules.mergeable
                              else "keep the hellora adapter"))
    for path, layer in adapter_layers(model).items():
        if isinstance(layer, HotExpertsLoRA) and layer.layout.interleaved:
            raise HelloraError(f"vLLM export: {path} interleaves gate and up (GPT-OSS); vLLM has no per-expert "
                               f"names for it: export --format peft and serve with enable_mixed_moe_lora_format=True "
                               f"and is_3d_lora_weight=True (docs/serving.md)")


def vllm_tensors(model: nn.Module, tensors: dict[str, torch.Tensor] | None = None) -> dict[str, torch.Tensor]:
    """The saved tensors {PEFT-style key: float32 tensor} of `model`'s adapters in the per-expert layout.

    `tensors` (full parameter name -> tensor) overrides the model's own adapter weights, as in `export_peft`.
    """
    _refuse_unsupported(model)
    own = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    source = tensors if tensors is not None else own

    def weight(name: str) -> torch.Tensor:
        value = source[name].detach().cpu().float()
        mask = source.get(mask_name(name))  # LoRI-S: B is exported as B * mask
        return value * mask.detach().cpu().float() if mask is not None else value

    gate, up, down = expert_weight_names(getattr(model.config, "model_type", ""))
    saved: dict[str, torch.Tensor] = {}
    for path, layer in adapter_layers(model).items():
        key = f"base_model.model.{path}"
        if isinstance(layer, (LoRALinear, RouterLoRA)):
            saved[f"{key}.lora_A.weight"] = weight(f"{path}.lora_A")
            saved[f"{key}.lora_B.weight"] = weight(f"{path}.lora_B")
        elif isinstance(layer, HotExpertsLoRA):
            layout, r = layer.layout, layer.r
            slots = {e: slot for slot, e in enumerate(layer.hot_experts)}
            shapes = {gate: ("lora_gate", layout.hidden_size, layout.intermediate_size),
                      up: ("lora_up", layout.hidden_size, layout.intermediate_size),
                      down: ("lora_down", layout.intermediate_size, layout.hidden_size)}
            for name, (part, in_f, out_f) in shapes.items():
                a_all, b_all = weight(f"{path}.{part}.lora_A"), weight(f"{path}.{part}.lora_B")
                for e in range(layout.num_experts):
                    slot = slots.get(e)
                    a = a_all[slot] if slot is not None else torch.zeros(r, in_f)  # (r, in)
                    b = b_all[slot] if slot is not None else torch.zeros(out_f, r)  # (out, r)
                    saved[f"{key}.{e}.{name}.lora_A.weight"] = a.contiguous()
                    saved[f"{key}.{e}.{name}.lora_B.weight"] = b.contiguous()
        else:
            raise HelloraError(f"vLLM export: no vLLM layout for the adapter on {path} ({type(layer).__name__})")
    return saved


def export_vllm(model: nn.Module, out_dir: str | Path, *, base_model: str | None = None,
                tensors: dict[str, torch.Tensor] | None = None, overwrite: bool = False,
                base_experts: dict | None = None) -> Path:
    """Write `model`'s hellora adapters as a vLLM LoRA folder (adapter_config.json + adapter_model.safetensors).

    `base_experts`: how training stored the base's experts (as `export_peft`'s), recorded in the sidecar.
    """
    out = Path(out_dir)
    state = adapter_state(model)
    cfg = state.config
    saved = vllm_tensors(model, tensors)
    suffixes = sorted({key.removesuffix(".lora_A.weight").rsplit(".", 1)[-1] for key in saved
                       if key.endswith(".lora_A.weight")})
    config = {"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": cfg.r, "lora_alpha": cfg.alpha,
              "target_modules": suffixes, "lora_dropout": 0.0, "bias": "none", "use_rslora": False,
              "use_dora": False, "base_model_name_or_path": base_model or state.model_id}
    if out.exists() and not out.is_dir():
        raise HelloraError(f"--out {out} is a file; choose a folder")
    if not overwrite and out.exists() and any(out.iterdir()):  # as export.py's other formats
        raise HelloraError(f"output folder {out} already exists and is not empty; choose another --out "
                           f"or pass --overwrite to replace it (nothing was changed)")
    with atomic_dir(out) as tmp:
        atomic_write_json(tmp / "adapter_config.json", config)
        save_file(saved, str(tmp / "adapter_model.safetensors"), metadata={"format": "pt"})
        atomic_write_json(tmp / "hellora_placement.json", {
            "format": VLLM_FORMAT, "fingerprint": state.fingerprint, "adapter": cfg.to_dict(),
            "experts": {str(k): v for k, v in state.experts.items()}, "base_model": config["base_model_name_or_path"],
            "base_experts": base_experts or {"cold_experts": "keep", "hot_experts": "keep"},
            "serve": {"max_lora_rank_at_least": cfg.r, "enable_mixed_moe_lora_format": False,
                      "is_3d_lora_weight": False},
        })
    return out
