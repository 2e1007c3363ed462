"""Exporting adapters for the rest of the ecosystem.

`peft`: a folder `peft.PeftModel.from_pretrained(base, folder)` loads with stock PEFT. Linear adapters become
`target_modules`; routers and fused experts become `target_parameters` (PEFT's ParamWrapper). PEFT keeps one LoRA
pair per 3D parameter, rank R, for all E experts: A (R*E, in) expert-major, B (out, R*E) rank-major. hellora's
separate gate and up pairs (rank r each) become one rank-2r pair on `gate_up_proj`, A = [A_gate; A_up] and
B = blockdiag(B_gate, B_up) placed on the gate and up rows, with alpha doubled so alpha/R is unchanged; cold
experts get zeros. Every other parameter target (down_proj, routers, 2D MLP weights) is written at that same rank
2r, its pair zero-padded (the same update), so only `target_modules` (attention Linears, rank r) need a
`rank_pattern`: PEFT checks pattern keys against targeted modules only and would warn about parameter keys.
PEFT then folds the (exact, zero-padded) update into every expert each step, which is fine for inference.
A `hellora_placement.json` sidecar keeps the placement. (`vllm`: the per-expert layout vLLM's MoE-LoRA loads
natively, at rank r; `hellora.adapters.export_vllm`, docs/serving.md.)

LoRI-D / LoRI-S export as plain LoRA (B times its mask; PEFT need not know A was frozen). DoRA and LoRAMoE are
refused: PEFT's `target_parameters` (how fused experts and routers are reached) has no DoRA, and PEFT has no
LoRA mixture at all.

`merged`: the base model with every update folded in, written by `save_pretrained` (serve it with vLLM). Works
for LoRA, DoRA (W' = m (W + sBA) / ||W + sBA||_row) and LoRI (B masked); refused for LoRAMoE, whose
input-dependent mixing cannot be folded into weights.

Both are built in a temporary folder beside `out` and moved into place whole; an existing `out` is refused
unless `overwrite`. `export_adapter` is the whole `hellora export` step: it rebuilds the base model the adapter
records (name, config overrides, tokenizer), refuses a merged export onto a random-weight preset, and copies the
tokenizer (with its chat template) into a merged folder so `hellora eval --model OUT` works on it alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch
from safetensors.torch import save_file
from torch import nn

from hellora.adapters.experts import HotExpertsLoRA, gate_up_columns
from hellora.adapters.inject import adapter_layers, check_mergeable, merge_adapters
from hellora.adapters.io import adapter_state
from hellora.adapters.lori import mask_name
from hellora.adapters.linear import LoRALinear
from hellora.adapters.router import RouterLoRA
from hellora.choices import ExportFormat
from hellora.models.loading import model_from_config
from hellora.utils.errors import HelloraError
from hellora.utils.io import atomic_dir, atomic_write_json
from hellora.utils.ownership import OutputKind, check_replaceable, mark_folder

if TYPE_CHECKING:
    from peft import LoraConfig
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


# PEFT (0.21) rewrites `target_modules` entries ending in these names into fused-expert `target_parameters` for
# MoE families whose layout changed in transformers 5 (its v4-adapter compatibility path), which would move a dense
# MLP's or shared expert's LoRA onto every routed expert. Targeting their `.weight` as a 2D parameter instead is
# the same update (lora_A (r, in), lora_B (out, r), scale alpha/r) and is left alone by that rewrite.
_PEFT_REMAPPED_NAMES = {"gate_proj", "up_proj", "down_proj", "w1", "w2", "w3", "gate"}


def _refuse_nonempty(out: Path, overwrite: bool = False) -> None:
    """The overwrite policy (`hellora.utils.ownership`): an existing export is replaced only when hellora made it."""
    if out.exists() and not out.is_dir() and not out.is_symlink():
        raise HelloraError(f"--out {out} is a file; choose a folder")
    check_replaceable(out, overwrite, kind=OutputKind.EXPORT)


def _peft_config(model: nn.Module, base_model: str | None) -> LoraConfig:
    from peft import LoraConfig

    state = adapter_state(model)
    cfg = state.config
    rules = cfg.rules
    if rules.peft_refusal:
        raise HelloraError(f"PEFT export: stock PEFT cannot express {rules.peft_refusal}; keep the hellora adapter"
                           + (" or write a merged checkpoint (--format merged)" if rules.mergeable else ""))
    layers = adapter_layers(model)
    factor = 2 if any(isinstance(layer, HotExpertsLoRA) for layer in layers.values()) else 1  # gate_up: rank 2r
    modules, parameters, rank_pattern, alpha_pattern = [], [], {}, {}
    for path, layer in layers.items():
        if isinstance(layer, LoRALinear) and path.rsplit(".", 1)[-1] in _PEFT_REMAPPED_NAMES:
            parameters.append(f"{path}.weight")
        elif isinstance(layer, LoRALinear):
            modules.append(path)
            if factor != 1:
                rank_pattern[path], alpha_pattern[path] = cfg.r, cfg.alpha
        elif isinstance(layer, RouterLoRA):
            parameters.append(f"{path}.weight")
        elif isinstance(layer, HotExpertsLoRA):
            parameters += [f"{path}.gate_up_proj", f"{path}.down_proj"]
    # peft types lora_alpha as int, but scales by alpha / r with any number (hellora's alphas are floats)
    return LoraConfig(r=factor * cfg.r, lora_alpha=factor * cfg.alpha,  # type: ignore[arg-type]
                      target_modules=modules or None,
                      target_parameters=parameters,
                      rank_pattern=rank_pattern, alpha_pattern=alpha_pattern, lora_dropout=0.0, bias="none",
                      base_model_name_or_path=base_model or state.model_id, task_type="CAUSAL_LM")


def _peft_weight(factors: nn.ModuleDict) -> torch.Tensor:
    """The weight of a PEFT LoRA factor (`lora_A` / `lora_B`) of the default adapter."""
    weight = factors["default"].weight
    assert isinstance(weight, torch.Tensor)  # an nn.Linear's
    return weight


def _unwrapped_path(peft_module_name: str) -> str:
    name = peft_module_name.removeprefix("base_model.model.")
    return name.replace(".base_layer", "")


def _pad_rank(a: torch.Tensor, b: torch.Tensor, rank: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A (r, in), B (out, r) zero-padded to rank `rank`: B @ A is unchanged."""
    extra = rank - a.shape[0]
    if extra <= 0:
        return a, b
    return torch.cat([a, a.new_zeros(extra, a.shape[1])]), torch.cat([b, b.new_zeros(b.shape[0], extra)], dim=1)


def _experts_peft_pair(layer: HotExpertsLoRA, param: str | None, num_experts: int,
                       tensors: Callable[..., torch.Tensor]) -> tuple[torch.Tensor, ...]:  # tensors(name)
    """PEFT (A (R*E, in), B (out, R*E)) of one fused parameter from the hot experts' pairs, R = 2r (down_proj's
    rank-r pairs zero-padded to it)."""
    layout, r = layer.layout, layer.r

    def get(weights: str, which: str) -> torch.Tensor:
        return tensors(f"{weights}.{which}").float()  # `tensors` applies LoRI-S masks to B

    if param == "gate_up_proj":
        a_g, b_g, a_u, b_u = (get(f"lora_{p}", w) for p in ("gate", "up") for w in ("lora_A", "lora_B"))
        rank, in_f, out_f = 2 * r, layout.hidden_size, 2 * layout.intermediate_size
        a = torch.zeros(num_experts, rank, in_f)
        b = torch.zeros(out_f, rank, num_experts)
        for slot, e in enumerate(layer.hot_experts):
            a[e] = torch.cat([a_g[slot], a_u[slot]])
            b[gate_up_columns(layout, "gate"), :r, e] = b_g[slot]
            b[gate_up_columns(layout, "up"), r:, e] = b_u[slot]
    else:
        a_d, b_d = get("lora_down", "lora_A"), get("lora_down", "lora_B")
        rank, in_f, out_f = 2 * r, layout.intermediate_size, layout.hidden_size
        a = torch.zeros(num_experts, rank, in_f)
        b = torch.zeros(out_f, rank, num_experts)
        for slot, e in enumerate(layer.hot_experts):
            a[e, :r], b[:, :r, e] = a_d[slot], b_d[slot]
    return a.reshape(num_experts * rank, in_f), b.reshape(out_f, rank * num_experts)


def export_peft(model: nn.Module, out_dir: str | Path, *, base_model: str | None = None,
                tensors: dict[str, torch.Tensor] | None = None, overwrite: bool = False,
                trust_remote_code: bool = False, base_experts: dict | None = None) -> Path:
    """Write a stock-PEFT adapter folder for `model`'s hellora adapters.

    `base_experts`: how the base's experts were stored in training ({"cold_experts": "nf4", ...}), written to the
    sidecar so a user knows the adapter was fitted to a quantized base (PEFT itself loads it on any base).

    `tensors` (full parameter name -> tensor) overrides the model's own adapter weights, so the export can run
    on a meta-device model with weights read from a saved adapter: no base weights are needed.
    `trust_remote_code` is the user's choice that `model` was built with (its meta skeleton is rebuilt the same way).
    """
    out = Path(out_dir)
    state = adapter_state(model)
    layers = adapter_layers(model)
    own = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    source = tensors if tensors is not None else own

    def weight(name: str) -> torch.Tensor:
        value = source[name].detach().cpu()
        mask = source.get(mask_name(name))  # LoRI-S: B is exported as B * mask
        return value * mask.detach().cpu() if mask is not None else value

    from transformers import PretrainedConfig

    config = _peft_config(model, base_model)
    model_config = model.config
    assert isinstance(model_config, PretrainedConfig)  # a transformers model's
    with torch.device("meta"):
        skeleton = model_from_config(model_config, dtype=None, trust_remote_code=trust_remote_code)
    peft_model = quiet_get_peft_model(skeleton, config)
    from peft.tuners.lora import LoraLayer

    saved: dict[str, torch.Tensor] = {}
    for name, module in peft_model.named_modules():
        if not isinstance(module, LoraLayer) or "default" not in module.lora_A:
            continue
        path = _unwrapped_path(name)
        param = getattr(module, "parameter_name", None)
        ours = layers.get(path)
        if isinstance(ours, HotExpertsLoRA):
            a, b = _experts_peft_pair(ours, param, ours.layout.num_experts,
                                      lambda n, path=path: weight(f"{path}.{n}"))
        elif isinstance(ours, (LoRALinear, RouterLoRA)):
            a, b = weight(f"{path}.lora_A").float(), weight(f"{path}.lora_B").float()
            a, b = _pad_rank(a, b, _peft_weight(module.lora_A).shape[0])
        else:
            raise HelloraError(f"PEFT export: no hellora adapter for PEFT layer {path} ({param})")
        expect_a, expect_b = _peft_weight(module.lora_A).shape, _peft_weight(module.lora_B).shape
        if a.shape != expect_a or b.shape != expect_b:
            raise HelloraError(f"PEFT export: {path} shapes {tuple(a.shape)}/{tuple(b.shape)} != PEFT's "
                               f"{tuple(expect_a)}/{tuple(expect_b)}")
        saved[f"{name}.lora_A.weight"] = a.contiguous()
        saved[f"{name}.lora_B.weight"] = b.contiguous()

    _refuse_nonempty(out, overwrite)
    with atomic_dir(out) as tmp:
        config.save_pretrained(str(tmp))
        save_file(saved, str(tmp / "adapter_model.safetensors"), metadata={"format": "pt"})
        atomic_write_json(tmp / "hellora_placement.json", {
            "format": "hellora.peft-sidecar/1", "fingerprint": state.fingerprint, "adapter": state.config.to_dict(),
            "experts": {str(k): v for k, v in state.experts.items()}, "base_model": config.base_model_name_or_path,
            "base_experts": base_experts or {"cold_experts": "keep", "hot_experts": "keep"},
        })
        mark_folder(tmp, OutputKind.EXPORT, finished=True)
    return out


def export_merged(model: PreTrainedModel, out_dir: str | Path, *, safe_serialization: bool = True,
                  tokenizer: PreTrainedTokenizerBase | None = None, overwrite: bool = False) -> Path:
    """Fold the adapters into the base weights (in place) and `save_pretrained` the plain model to `out_dir`,
    with `tokenizer` (and its chat template) beside it when given."""
    out = Path(out_dir)
    adapter_state(model)
    check_mergeable(model)  # before anything is written
    _refuse_nonempty(out, overwrite)
    with atomic_dir(out) as tmp:
        from hellora.quant.apply import dequantize_experts, is_quantized

        if is_quantized(model):  # experts trained quantized: merged in the compute dtype, as training saw them
            dequantize_experts(model)
        merge_adapters(model)
        model.save_pretrained(str(tmp), safe_serialization=safe_serialization)
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
        mark_folder(tmp, OutputKind.EXPORT, finished=True)
    return out


def quiet_get_peft_model(model: nn.Module, config: LoraConfig) -> nn.Module:  # a peft.PeftModel
    """`peft.get_peft_model`, without the FutureWarning transformers 5 raises when PEFT reads the deprecated
    `model.is_gradient_checkpointing` (PEFT's own access, nothing a user can change; other warnings pass)."""
    import warnings

    from peft import get_peft_model

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*", category=FutureWarning)
        return get_peft_model(model, config)


def recorded_model(record: dict, model: str | None = None) -> dict:
    """The base-model spec an adapter record names: {name, overrides, tokenizer, trust_remote_code}.

    `model` (e.g. `--model`) replaces the recorded name; the recorded overrides then apply only to the same name.
    `trust_remote_code` is what the record claims (true only for a JSON `true`): a reason to refuse without the
    user's flag (`hellora.models.trust.check_recorded_trust`), never a reason to turn it on.
    """
    spec = dict(record.get("model") or {})
    spec.setdefault("name", record.get("base_model"))
    if model and model != spec.get("name"):
        spec = {"name": model}
    if not spec.get("name"):
        raise HelloraError("the adapter does not name its base model; pass --model")
    return {"name": spec["name"], "overrides": spec.get("overrides") or {}, "tokenizer": spec.get("tokenizer"),
            "trust_remote_code": spec.get("trust_remote_code") is True}


def export_adapter(adapter: str | Path, fmt: str, out: str | Path, *, model: str | None = None, dtype: str = "auto",
                   trust_remote_code: bool = False, overwrite: bool = False) -> Path:
    """`hellora export`: a saved hellora adapter as a stock-PEFT folder (`fmt="peft"`) or merged into its base
    model (`fmt="merged"`), rebuilding the base model the adapter records (overrides included)."""
    from hellora.adapters.io import (attach_from_record, check_adapter_tensors, load_adapter, read_adapter_record,
                                     read_adapter_tensors)
    from hellora.models.loading import load_model, load_tokenizer, meta_model
    from hellora.models.presets import PRESETS
    from hellora.models.trust import check_recorded_trust, user_trust

    out = Path(out)
    _refuse_nonempty(out, overwrite)  # before any model is built
    record = read_adapter_record(adapter)
    spec = recorded_model(record, model)
    trust = user_trust(trust_remote_code)  # the user's flag alone; the record may only make us refuse
    check_recorded_trust(spec["trust_remote_code"], trust, f"adapter {adapter}")
    if fmt in (ExportFormat.PEFT, ExportFormat.VLLM):
        # PEFT / vLLM exports need shapes, not weights: build the model on the meta device.
        overrides = spec["overrides"] if spec["name"] in PRESETS else None  # as training built it
        net = meta_model(spec["name"], trust_remote_code=trust, overrides=overrides)
        attach_from_record(net, record, where=f"adapter {adapter}")
        tensors = read_adapter_tensors(adapter)
        check_adapter_tensors(net, tensors, f"adapter {adapter}")  # LoRI-S masks present: never exported unmasked
        from hellora.quant.run import recorded_storage

        storage = {key: value.value for key, value in recorded_storage(record).items()}
        if fmt == ExportFormat.VLLM:
            from hellora.adapters.export_vllm import export_vllm

            return export_vllm(net, out, base_model=spec["name"], tensors=tensors,
                               overwrite=overwrite, base_experts=storage)
        return export_peft(net, out, base_model=spec["name"], tensors=tensors,
                           overwrite=overwrite, trust_remote_code=trust, base_experts=storage)
    if fmt != ExportFormat.MERGED:
        raise HelloraError(f"--format: unknown format {fmt!r}; choose peft, vllm or merged")
    if spec["name"] in PRESETS:
        raise HelloraError(f"adapter {adapter} was trained on preset {spec['name']!r}, an architecture with random "
                           f"weights: a merged checkpoint of it means nothing; export --format peft, or pass --model "
                           f"with the pretrained folder")
    tokenizer = load_tokenizer(spec["tokenizer"] or spec["name"], trust_remote_code=trust)  # before the big load
    net = load_model(spec["name"], dtype=dtype, trust_remote_code=trust)
    load_adapter(net, adapter)
    return export_merged(net, out, tokenizer=tokenizer, overwrite=overwrite)
