"""The study's arms (one adapter recipe each) and the paper's claims they test.

Every arm fine-tunes the same pretrained base on the same target data with the same rank, steps and batch; only
what is adapted (and its learning rate, tuned per arm on a validation split) differs.

    Table 4 (selection rule, k fixed):  lora, hellora (layer-hot), model-hot, random, cold (bottom-k)
    Table 5 (placement):                hellora-pure, hellora-gate, hellora (= all: attention + router + experts)
    Table 6 (k):                        hellora-k/2, hellora (k = router top-k), hellora-2k
    Table 10 (warm-up fraction):        warmup-1, warmup-5, hellora (10%), warmup-100
    LoRI:                               lori-d, hellori-d, hellori-s (its A and mask from hellori-d, same seeds)
    full fine-tuning:                   fft
    forgetting probe:                   lora-pure (LoRA on every expert, no attention / router adapters)
"""

from __future__ import annotations

from dataclasses import dataclass

from hellora.methods.base import AdapterMethod
from hellora.methods.registry import NO_VARIANT, get_method
from hellora.vocab import Method, Variant


@dataclass(frozen=True)
class Arm:
    name: str
    method: Method                   # lora | hellora | fft  (AdapterConfig.method)
    variant: Variant = NO_VARIANT    # none | lori_d | lori_s
    strategy: str | None = None      # selection rule for "hellora": layer | model | random | cold
    placement: str = "all"           # pure | gate | all
    k_factor: float = 1.0            # hot experts per layer = k_factor x router top-k
    warmup: float | None = None      # warm-up fraction of the profile used; None: the config's default
    lori_from: str | None = None     # arm whose finished adapter (same target and seeds) LoRI-S starts from
    table: str = ""
    label: str = ""

    @property
    def needs_profile(self) -> bool:
        return self.rules.adapts_hot_experts and self.lori_from is None

    @property
    def rules(self) -> AdapterMethod:
        """The arm's registered method object (`hellora.methods`)."""
        return get_method(self.method, self.variant)

    def __post_init__(self) -> None:  # plain strings in the table below become vocabulary members
        object.__setattr__(self, "method", Method.parse(self.method, f"arm {self.name}: method"))
        object.__setattr__(self, "variant", Variant.parse(self.variant, f"arm {self.name}: variant"))


ARMS: dict[str, Arm] = {a.name: a for a in (
    Arm("lora", "lora", table="4", label="LoRA (all experts)"),
    Arm("hellora", "hellora", strategy="layer", table="4", label="HELLoRA (layer-hot)"),
    Arm("model-hot", "hellora", strategy="model", table="4", label="model-hot"),
    Arm("random", "hellora", strategy="random", table="4", label="random k"),
    Arm("cold", "hellora", strategy="cold", table="4", label="cold (bottom-k)"),
    Arm("hellora-gate", "hellora", strategy="layer", placement="gate", table="5", label="HELLoRA +gate"),
    Arm("hellora-pure", "hellora", strategy="layer", placement="pure", table="5", label="HELLoRA pure"),
    Arm("hellora-khalf", "hellora", strategy="layer", k_factor=0.5, table="6", label="HELLoRA k/2"),
    Arm("hellora-2k", "hellora", strategy="layer", k_factor=2.0, table="6", label="HELLoRA 2k"),
    Arm("warmup-1", "hellora", strategy="layer", warmup=0.01, table="10", label="HELLoRA warm-up 1%"),
    Arm("warmup-5", "hellora", strategy="layer", warmup=0.05, table="10", label="HELLoRA warm-up 5%"),
    Arm("warmup-100", "hellora", strategy="layer", warmup=1.0, table="10", label="HELLoRA warm-up 100%"),
    Arm("lori-d", "lora", variant="lori_d", table="1", label="LoRI-D"),
    Arm("hellori-d", "hellora", variant="lori_d", strategy="layer", table="1", label="HELLoRI-D"),
    Arm("hellori-s", "hellora", variant="lori_s", lori_from="hellori-d", table="1", label="HELLoRI-S"),
    Arm("fft", "fft", table="1", label="full fine-tuning"),
    Arm("lora-pure", "lora", placement="pure", table="12", label="LoRA pure (forgetting probe)"),
)}

# (a, b, strict, group): the claim "a > b" (strict) or "a >= b"; primary claims are the paper's own orderings
CLAIMS = [
    ("hellora", "model-hot", True, "Table 4 chain"),
    ("model-hot", "random", True, "Table 4 chain"),
    ("random", "lora", True, "Table 4 chain"),
    ("lora", "cold", True, "Table 4 chain"),
    ("hellora", "lora", False, "headline"),
    ("hellori-d", "lori-d", False, "headline"),
    ("hellora", "random", True, "selection rule at fixed k"),
    ("hellora", "cold", True, "selection rule at fixed k"),
    ("hellora", "hellora-pure", True, "Table 5"),
    ("hellora-gate", "hellora-pure", True, "Table 5"),
    ("hellora", "hellora-khalf", True, "Table 6"),
    ("hellora", "warmup-1", True, "Table 10"),
]


def ordered(names: list[str]) -> list[str]:
    """`names` in run order: an arm that another continues from (LoRI-S from LoRI-D) comes first."""
    out = [n for n in names if ARMS[n].lori_from is None]
    return out + [n for n in names if ARMS[n].lori_from is not None]
