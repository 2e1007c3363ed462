"""What each `hellora bench` setup is: its name grammar (`hellora@torch@unfused`), how it is built (our adapters,
or stock PEFT `target_parameters` / attention-only), the fixed skewed routing it runs under, and one training
step. Shared by the sequential timing (`throughput.py`) and the round-robin one (`interleaved.py`).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import TYPE_CHECKING, Callable, Iterator

import torch

from hellora.kernels.subset_lora import BACKEND_ENV, KERNEL_CHOICES
from hellora.methods.registry import BENCH_SETUPS
from hellora.choices import ExpertPrecision

if TYPE_CHECKING:
    from torch import nn
    from torch.utils.hooks import RemovableHandle

    from hellora.models.families import MoEModelSpec
    from hellora.placement import HotExpertPlacement

KERNEL_SETUPS = tuple(BENCH_SETUPS)  # our adapters (`AdapterMethod.bench_setup`): the setups that take @suffixes
SETUPS = ("frozen", *KERNEL_SETUPS, "peft-lora", "peft-attn")
STORAGES = (ExpertPrecision.INT8.value, ExpertPrecision.NF4.value)  # @int8 / @nf4: experts stored quantized
SUFFIXES = (*KERNEL_CHOICES, "unfused", *STORAGES)


def check_setup(name: str) -> tuple[str, str, bool]:
    """(method, expert kernel or "", fuse shared inputs) of a setup name such as `hellora@torch@unfused`;
    ValueError naming what is wrong."""
    base, *suffixes = name.split("@")
    if base not in SETUPS:
        raise ValueError(f"unknown setup {name!r}; choose from {', '.join(SETUPS)}")
    bad = [s for s in suffixes if s not in SUFFIXES]
    kernels = [s for s in suffixes if s in KERNEL_CHOICES]
    storages = [s for s in suffixes if s in STORAGES]
    if suffixes and (base not in KERNEL_SETUPS or bad or len(kernels) > 1 or len(storages) > 1
                     or len(set(suffixes)) < len(suffixes)):
        raise ValueError(f"setup {name!r}: only {' and '.join(KERNEL_SETUPS)} take suffixes: one kernel of "
                         f"@{', @'.join(KERNEL_CHOICES)}, @unfused, and one storage of @{', @'.join(STORAGES)}")
    return base, (kernels[0] if kernels else ""), "unfused" not in suffixes


@contextmanager
def expert_kernel(kernel: str) -> Iterator[None]:
    old = os.environ.get(BACKEND_ENV)
    if kernel:
        os.environ[BACKEND_ENV] = kernel
    try:
        yield
    finally:
        if kernel:
            if old is None:
                os.environ.pop(BACKEND_ENV, None)
            else:
                os.environ[BACKEND_ENV] = old


def install_routing(model: nn.Module, spec: MoEModelSpec, routing: dict[int, tuple]) -> list[RemovableHandle]:
    """Replace each experts module's top_k_index by the fixed skewed one (same shape, same weights)."""
    handles = []
    get_base_model = getattr(model, "get_base_model", None)  # a PEFT wrapper's
    model = get_base_model() if callable(get_base_model) else model
    for moe in spec.moe_layers:
        fixed = routing[moe.layer_index][1]

        def hook(module, args, kwargs, fixed=fixed):
            hidden, index = args[0], args[1]
            if index.shape != fixed.shape:
                return None
            return (hidden, fixed.to(index.device), *args[2:]), kwargs

        module = model.get_submodule(moe.experts_path)
        handles.append(module.register_forward_pre_hook(hook, with_kwargs=True))
    return handles


def peft_model(model: nn.Module, spec: MoEModelSpec, attention_only: bool, r: int, alpha: float) -> nn.Module:
    from peft import LoraConfig

    from hellora.adapters.export import quiet_get_peft_model

    params = []
    if not attention_only:
        for moe in spec.moe_layers:
            params += [f"{moe.router_path}.weight", f"{moe.experts_path}.gate_up_proj", f"{moe.experts_path}.down_proj"]
    # peft types lora_alpha as int, but scales by alpha / r with any number (hellora's alphas are floats)
    config = LoraConfig(r=r, lora_alpha=alpha, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],  # type: ignore[arg-type]
                        target_parameters=params or None)
    return quiet_get_peft_model(model, config)


def stepper(model: nn.Module,
            batch: dict[str, torch.Tensor]) -> tuple[Callable[[], torch.Tensor], torch.optim.Optimizer | None]:
    """(forward returning the loss, AdamW over the trainable parameters or None when frozen)."""
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5) if params else None
    get_input_embeddings = model.get_input_embeddings  # a transformers model's method
    assert callable(get_input_embeddings)
    embeds = get_input_embeddings()

    def forward():
        if optimizer is None:  # frozen: backward to the input embeddings only
            inputs = embeds(batch["input_ids"]).detach().requires_grad_()
            return model(inputs_embeds=inputs, attention_mask=batch["attention_mask"], labels=batch["labels"]).loss
        return model(**batch).loss

    return forward, optimizer


def storage_of(name: str) -> ExpertPrecision:
    """The expert storage a setup name asks for: `hellora@nf4` stores the cold experts as NF4, `lora@nf4` every
    expert (all are hot: QLoRA-style); keep without a storage suffix."""
    found = [s for s in name.split("@")[1:] if s in STORAGES]
    return ExpertPrecision.parse(found[0], "setup") if found else ExpertPrecision.KEEP


def store_experts(model: nn.Module, name: str, every_expert_hot: bool = False) -> Callable[[], None]:
    """Store `model`'s experts as setup `name` asks (after its adapters are attached); returns a function that puts
    the original full-precision parameters back, so the next setup of a sequential run sees the same weights."""
    precision = storage_of(name)
    if precision is ExpertPrecision.KEEP:
        return lambda: None
    from hellora.quant.apply import adapted_experts, quantize_experts
    from hellora.quant.store import QuantizedExpertWeight

    originals = {(module, attr): value for module in model.modules() for attr in ("gate_up_proj", "down_proj")
                 if isinstance(value := module._parameters.get(attr), torch.nn.Parameter) and value.dim() == 3}
    quantize_experts(model, adapted_experts(model), cold=precision,
                     hot=precision if every_expert_hot else ExpertPrecision.KEEP)

    def restore() -> None:
        for (module, attr), value in originals.items():
            if isinstance(getattr(module, attr, None), QuantizedExpertWeight):
                delattr(module, attr)
                setattr(module, attr, value)
            module.__dict__.pop("forward", None)

    return restore


def set_up(model: nn.Module, name: str, r: int, alpha: float, spec: MoEModelSpec,
           hot: HotExpertPlacement) -> tuple[nn.Module, str, str, Callable[[], None]]:
    """(`model` set up as setup `name`, method, expert kernel, restore): our adapters attached in place (hot experts
    for hellora; experts stored quantized with @int8 / @nf4, which `restore()` undoes), or the model wrapped by
    stock PEFT (a new module), or `model` itself for frozen."""
    from hellora.adapters import AdapterConfig, attach_adapters

    method, kernel, fuse = check_setup(name)
    restore = lambda: None  # noqa: E731  (replaced when the setup quantizes its experts)
    if method in BENCH_SETUPS:
        rules = BENCH_SETUPS[method]
        config = AdapterConfig(method=rules.method, variant=rules.variant, r=r, alpha=alpha, fuse_shared_inputs=fuse)
        attach_adapters(model, config, hot if rules.adapts_hot_experts else None, spec)
        restore = store_experts(model, name, every_expert_hot=not rules.adapts_hot_experts)
    elif method.startswith("peft-"):
        model = peft_model(model, spec, method.endswith("-attn"), r, alpha)
    return model, method, kernel, restore
