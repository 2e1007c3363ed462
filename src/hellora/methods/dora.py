"""DoRA (variant "dora"): LoRA's direction plus a trainable magnitude per output row (`hellora.adapters.dora`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hellora.methods.base import AdapterSettings, LayerFactory
from hellora.methods.lora import LoRA

if TYPE_CHECKING:
    from hellora.models.shapes import Matrix


class DoRA(LoRA):
    """Per adapted (out, in) weight: A (r, in), B (out, r) and a magnitude (out,), all trained."""

    label = "DoRA"
    bench_setup = None
    fsdp_refusal = ("adapter.variant dora is not supported under FSDP (its magnitude is initialised from full base "
                    "weights, which are sharded outside a forward); use DDP")
    peft_refusal = "DoRA on fused experts and routers (PEFT's target_parameters has no DoRA)"
    quantized_experts_refusal = ("DoRA is not run over quantized experts (its magnitude is set from the "
                                 "full-precision weights)")

    def layer_classes(self, config: AdapterSettings) -> tuple[LayerFactory, LayerFactory | None, LayerFactory]:
        from hellora.adapters.dora import DoRALinear, DoRARouter, ExpertDoRAWeights

        return DoRALinear, DoRARouter, ExpertDoRAWeights

    def adapter_entries(self, matrix: Matrix, config: AdapterSettings) -> tuple[int, int]:
        return config.r * (matrix.inp + matrix.out) + matrix.out, config.r * matrix.out
