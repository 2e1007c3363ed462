"""The study's arms (one adapter recipe each).

Every arm fine-tunes the same pretrained base on the same target data with the same rank, steps and batch, at
every learning rate of the grid; only what is adapted, and where its hot experts come from, differs.

    primary (recipes/proxy/cpu.yaml):   lora, hellora (layer-hot, 10% warm-up profile), random (same k),
                                        hellora-pure (experts only), retain (retention-aware: the experts most
                                        specific to the target against the other skills' routing on that base)
    Table 4 (selection rule, k fixed):  model-hot, cold (bottom-k)
    Table 5 (targets):                  hellora-gate (+ router; hellora = all: attention + router + experts)
    Table 6 (k):                        hellora-khalf, hellora-2k
    Table 10 (warm-up fraction):        warmup-1, warmup-5, warmup-100 (one epoch: 16 optimizer steps at the
                                        cpu recipe's shape, long enough to move the adapters)
    where the profile comes from:       forward-count (routing of the base model on the fine-tuning data, no
                                        training), oracle (routing of the finished LoRA run, same base/seed/lr)
    LoRI:                               lori-d, hellori-d, hellori-s (its A and mask from hellori-d, same lr)
    full fine-tuning:                   fft
    forgetting probe:                   lora-pure (LoRA on every expert, no attention / router adapters)
    quantized experts (issue 24):       hellora-cold-int8, hellora-cold-nf4 (cold experts stored int8 / NF4, hot
                                        experts in full precision), hellora-all-nf4 (hot experts NF4 too:
                                        QLoRA-style), lora-all-nf4 (LoRA over NF4 experts)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hellora.methods.base import AdapterMethod
from hellora.methods.registry import NO_VARIANT, get_method
from hellora.choices import Choice, ExpertPrecision, Method, Strategy, Targets, Variant


class ProfileSource(Choice):
    """Where a HELLoRA arm's routing profile comes from."""

    WARMUP = "warmup"      # the paper's warm-up: LoRA on everything, counters on, the adapter thrown away
    FORWARD = "forward"    # forward passes of the untouched base over the fine-tuning data
    ORACLE = "oracle"      # forward passes of the finished LoRA run over the fine-tuning data


@dataclass(frozen=True)
class Arm:
    name: str
    method: Method                   # lora | hellora | fft  (AdapterConfig.method)
    variant: Variant = NO_VARIANT    # none | lori_d | lori_s
    strategy: Strategy | None = None  # selection rule for "hellora"
    targets: Targets = Targets.ALL   # pure | gate | all (AdapterConfig.targets: the modules adapted)
    k_factor: float = 1.0            # hot experts per layer = k_factor x router top-k
    warmup: float | None = None      # warm-up fraction of the profile used; None: the config's default
    profile: ProfileSource = ProfileSource.WARMUP
    lori_from: str | None = None     # arm whose finished adapter (same target, base, seed, lr) LoRI-S starts from
    cold_experts: ExpertPrecision = ExpertPrecision.KEEP  # how the frozen experts without adapters are stored (model.cold_experts)
    hot_experts: ExpertPrecision = ExpertPrecision.KEEP   # how the frozen base weights of the adapted experts are stored
    table: str = ""
    label: str = ""

    @property
    def needs_profile(self) -> bool:
        return self.rules.adapts_hot_experts and self.lori_from is None

    @property
    def rules(self) -> AdapterMethod:
        """The arm's registered method object (`hellora.methods`)."""
        return get_method(self.method, self.variant)

    @property
    def after(self) -> str | None:
        """The arm whose run (same target, base, seed, lr) must exist before this one starts."""
        if self.lori_from:
            return self.lori_from
        return "lora" if self.profile is ProfileSource.ORACLE else None

    def __post_init__(self) -> None:  # an arm made from plain strings (a user's own table) holds members too
        object.__setattr__(self, "method", Method.parse(self.method, f"arm {self.name}: method"))
        if self.strategy is not None:
            object.__setattr__(self, "strategy", Strategy.parse(self.strategy, f"arm {self.name}: strategy"))
        object.__setattr__(self, "variant", Variant.parse(self.variant, f"arm {self.name}: variant"))
        object.__setattr__(self, "targets", Targets.parse(self.targets, f"arm {self.name}: targets"))
        object.__setattr__(self, "profile", ProfileSource.parse(self.profile, f"arm {self.name}: profile"))
        for name in ("cold_experts", "hot_experts"):
            object.__setattr__(self, name, ExpertPrecision.parse(getattr(self, name), f"arm {self.name}: {name}"))

    @property
    def quantized(self) -> bool:
        """Whether any expert weights are stored quantized (`hellora.quant`) for this arm."""
        return (self.cold_experts, self.hot_experts) != (ExpertPrecision.KEEP, ExpertPrecision.KEEP)


def _arm(name: str, method: str, variant: str = NO_VARIANT.value, **fields: Any) -> Arm:
    """An arm of the table below, its method and variant named as the method registry names them (the registry
    and the choices module are the only places that spell method members out)."""
    return Arm(name, Method.parse(method, f"arm {name}: method"), Variant.parse(variant, f"arm {name}: variant"),
               **fields)


ARMS: dict[str, Arm] = {a.name: a for a in (
    _arm("lora", "lora", table="4", label="LoRA (all experts)"),
    _arm("hellora", "hellora", strategy=Strategy.LAYER, table="4", label="HELLoRA (layer-hot)"),
    _arm("random", "hellora", strategy=Strategy.RANDOM, table="4", label="random k"),
    _arm("hellora-pure", "hellora", strategy=Strategy.LAYER, targets=Targets.PURE, table="5",
        label="HELLoRA pure"),
    _arm("retain", "hellora", strategy=Strategy.RETENTION, table="new",
        label="retention-aware (target-specific)"),
    _arm("model-hot", "hellora", strategy=Strategy.MODEL, table="4", label="model-hot"),
    _arm("cold", "hellora", strategy=Strategy.COLD, table="4", label="cold (bottom-k)"),
    _arm("hellora-gate", "hellora", strategy=Strategy.LAYER, targets=Targets.GATE, table="5",
        label="HELLoRA +gate"),
    _arm("hellora-khalf", "hellora", strategy=Strategy.LAYER, k_factor=0.5, table="6", label="HELLoRA k/2"),
    _arm("hellora-2k", "hellora", strategy=Strategy.LAYER, k_factor=2.0, table="6", label="HELLoRA 2k"),
    _arm("warmup-1", "hellora", strategy=Strategy.LAYER, warmup=0.01, table="10", label="HELLoRA warm-up 1%"),
    _arm("warmup-5", "hellora", strategy=Strategy.LAYER, warmup=0.05, table="10", label="HELLoRA warm-up 5%"),
    _arm("warmup-100", "hellora", strategy=Strategy.LAYER, warmup=1.0, table="10",
        label="HELLoRA warm-up 100% (1 epoch)"),
    _arm("forward-count", "hellora", strategy=Strategy.LAYER, profile=ProfileSource.FORWARD, table="warm-up",
        label="HELLoRA, forward counting on the base"),
    _arm("oracle", "hellora", strategy=Strategy.LAYER, profile=ProfileSource.ORACLE, table="warm-up",
        label="HELLoRA, oracle profile (finished LoRA run)"),
    _arm("lori-d", "lora", variant="lori_d", table="1", label="LoRI-D"),
    _arm("hellori-d", "hellora", variant="lori_d", strategy=Strategy.LAYER, table="1",
        label="HELLoRI-D"),
    _arm("hellori-s", "hellora", variant="lori_s", lori_from="hellori-d", table="1", label="HELLoRI-S"),
    _arm("fft", "fft", table="1", label="full fine-tuning"),
    _arm("lora-pure", "lora", targets=Targets.PURE, table="12", label="LoRA pure (forgetting probe)"),
    _arm("hellora-cold-int8", "hellora", strategy=Strategy.LAYER, cold_experts=ExpertPrecision.INT8,
        table="quant",
        label="HELLoRA, cold experts int8"),
    _arm("hellora-cold-nf4", "hellora", strategy=Strategy.LAYER, cold_experts=ExpertPrecision.NF4,
        table="quant",
        label="HELLoRA, cold experts NF4"),
    _arm("hellora-all-nf4", "hellora", strategy=Strategy.LAYER, cold_experts=ExpertPrecision.NF4,
        hot_experts=ExpertPrecision.NF4, table="quant",
        label="HELLoRA, every expert NF4 (QLoRA-style)"),
    _arm("lora-all-nf4", "lora", cold_experts=ExpertPrecision.NF4, hot_experts=ExpertPrecision.NF4, table="quant",
        label="LoRA, every expert NF4"),
)}


def ordered(names: list[str]) -> list[str]:
    """`names` in run order: an arm that another starts from (LoRI-D for LoRI-S, LoRA for the oracle) first."""
    first = [n for n in names if ARMS[n].after is None]
    return first + [n for n in names if ARMS[n].after is not None]
