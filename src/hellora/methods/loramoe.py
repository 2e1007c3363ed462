"""LoRAMoE (paper Appendix F): N rank-r LoRAs mixed by a learned softmax router on every Linear of every expert FFN
(routed, shared, dense MLP), and nothing else (`hellora.adapters.loramoe`)."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from hellora.methods.base import AdapterMethod, AdapterSettings, LayerFactory
from hellora.utils.errors import HelloraError

if TYPE_CHECKING:
    from hellora.models.shapes import Matrix


class LoRAMoE(AdapterMethod):
    """Per adapted (out, in) weight: N pairs A (r, in), B (out, r) and a router (N, in), all trained."""

    label = "LoRAMoE"
    uses_targets = False
    has_balance_loss = True
    default_rank = 4
    in_paper_flops_table = False
    peft_refusal = "LoRAMoE (a router-mixed set of LoRA pairs)"
    mergeable = False
    quantized_experts_refusal = "LoRAMoE is not run over quantized experts"

    def check(self, config: AdapterSettings) -> None:
        if config.router:
            raise HelloraError("adapter.router: method 'loramoe' adapts expert FFNs only, not the router")

    def layer_classes(self, config: AdapterSettings) -> tuple[LayerFactory, LayerFactory | None, LayerFactory]:
        from hellora.adapters.loramoe import ExpertLoRAMoEWeights, LoRAMoELinear

        n = config.loramoe_experts
        return partial(LoRAMoELinear, num_experts=n), None, partial(ExpertLoRAMoEWeights, num_experts=n)

    def adapter_entries(self, matrix: Matrix, config: AdapterSettings) -> tuple[int, int]:
        n, r = config.loramoe_experts, config.r
        return n * r * (matrix.inp + matrix.out) + n * matrix.inp, n * r * matrix.out

    def report_fields(self, config: AdapterSettings) -> dict[str, Any]:
        return {"loramoe_experts": config.loramoe_experts}
