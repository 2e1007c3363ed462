"""LoRA on every expert (and on attention / router per targets): the base rules, unchanged."""

from __future__ import annotations

from hellora.methods.base import AdapterMethod


class LoRA(AdapterMethod):
    """Plain LoRA: W + (alpha / r) B A on every adapted weight, all experts of each MoE layer."""

    label = "LoRA"
    bench_setup = "lora"
