"""The method registry: one line per (Method, Variant) hellora can train, keyed by its `hellora.choices` members.

A combination not listed here is refused by `AdapterConfig` (naming `adapter.variant`). Adding a method or a variant:
its module in this package, one line below, and its tests (docs/architecture.md, "A new method").
"""

from __future__ import annotations

from hellora.methods.base import AdapterMethod
from hellora.methods.dora import DoRA
from hellora.methods.fft import FullFineTuning
from hellora.methods.heldora import HELDoRA
from hellora.methods.hellora import HELLoRA
from hellora.methods.hellori_d import HELLoRID
from hellora.methods.hellori_s import HELLoRIS
from hellora.methods.lora import LoRA
from hellora.methods.lori_d import LoRID
from hellora.methods.lori_s import LoRIS
from hellora.methods.loramoe import LoRAMoE
from hellora.utils.errors import HelloraError
from hellora.choices import Method, Variant

DEFAULT_METHOD, NO_VARIANT = Method.HELLORA, Variant.NONE  # what an AdapterConfig or a count request defaults to

METHODS: dict[tuple[Method, Variant], AdapterMethod] = {(rules.method, rules.variant): rules for rules in (
    HELLoRA(Method.HELLORA, Variant.NONE),
    HELLoRID(Method.HELLORA, Variant.LORI_D),
    HELLoRIS(Method.HELLORA, Variant.LORI_S),
    HELDoRA(Method.HELLORA, Variant.DORA),
    LoRA(Method.LORA, Variant.NONE),
    DoRA(Method.LORA, Variant.DORA),
    LoRID(Method.LORA, Variant.LORI_D),
    LoRIS(Method.LORA, Variant.LORI_S),
    LoRAMoE(Method.LORAMOE, Variant.NONE),
    FullFineTuning(Method.FFT, Variant.NONE),
)}

BENCH_SETUPS: dict[str, AdapterMethod] = {rules.bench_setup: rules for rules in METHODS.values() if rules.bench_setup}


def get_method(method: Method, variant: Variant = NO_VARIANT) -> AdapterMethod:
    """The registered rules of `method` + `variant`; one `HelloraError` naming adapter.variant when unregistered."""
    rules = METHODS.get((method, variant))
    if rules is None:
        takers = sorted({m for m, v in METHODS if v is variant}, reverse=True)
        raise HelloraError(f"adapter.variant: {variant!r} applies to method{'s' if len(takers) > 1 else ''} "
                           f"{' and '.join(repr(m) for m in takers)}, not {method!r}")
    return rules
