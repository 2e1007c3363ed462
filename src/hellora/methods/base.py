"""`AdapterMethod`: everything hellora needs to know about one method (+ variant), asked instead of its name.

The base class holds plain LoRA's rules: a pair A (r, in), B (out, r) on every adapted (out, in) weight, every
entry trained, every expert adapted, attention and router per `AdapterConfig.targets`. A method overrides what it
changes (class attributes for yes/no rules, methods for arithmetic) and is registered once, with its
(`Method`, `Variant`) key, in `registry.py`; instances are the registry's singletons, told their key there.

This package imports no torch at module level (the preset parameter count stays torch-free) and nothing that imports
`hellora.adapters.config`, which imports the registry: layer classes are imported inside `layer_classes`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

if TYPE_CHECKING:
    from hellora.models.shapes import Matrix
    from hellora.choices import Method, Variant

LayerFactory = Callable[..., Any]


class AdapterSettings(Protocol):
    """The fields of `hellora.adapters.config.AdapterConfig` a method reads (a protocol: the config imports us)."""

    r: int
    alpha: float
    router: bool | None
    lori_from: str | None
    lori_density: float
    loramoe_experts: int


class AdapterMethod:
    """One registered method (+ variant). Class attributes are its yes/no rules; see each for what asks it."""

    label: ClassVar[str] = "LoRA"
    """Report label (`hellora.report.tables.method_label`), before selection details and targets."""
    adapts_hot_experts: ClassVar[bool] = False
    """Adapts only the placement's hot experts of each MoE layer (profile, select, k); else every expert."""
    uses_targets: ClassVar[bool] = True
    """`AdapterConfig.targets` decides attention and router adapters (False: expert FFNs only, or no adapter)."""
    trains_whole_model: ClassVar[bool] = False
    """No adapter: every base weight trains and the run saves the whole model (`model/`, not `adapter/`)."""
    freezes_a: ClassVar[bool] = False
    """A stays at its init (LoRI): attach freezes every lora_A."""
    masks_b: ClassVar[bool] = False
    """Only a masked share of B trains (LoRI-S): attach adds a `lora_B_mask` buffer per B."""
    continues_from_lori_d: ClassVar[bool] = False
    """Starts from a finished LoRI-D adapter (`adapter.lori_from`): its A, its mask, its placement."""
    starts_lori_s: ClassVar[bool] = False
    """Its finished adapter is what a LoRI-S run starts from (LoRI-D)."""
    has_balance_loss: ClassVar[bool] = False
    """Adds `adapter.loramoe_balance`'s auxiliary loss to the training loss (LoRAMoE)."""
    default_rank: ClassVar[int] = 32
    """r when a count request gives none: the paper's (Table 7), LoRAMoE's original 4 (Table 1)."""
    in_paper_flops_table: ClassVar[bool] = True
    """The paper's Table 3 defines its FLOPs (`hellora flops --convention paper`)."""
    bench_setup: ClassVar[str | None] = None
    """Its `hellora bench` setup name, which takes @kernel suffixes; None: not benchmarked."""
    fsdp_refusal: ClassVar[str | None] = None
    """Why FSDP cannot train it (the message after "train.fsdp: "); None: it can."""
    peft_refusal: ClassVar[str | None] = None
    """What stock PEFT cannot express about it (PEFT export refused); None: exports to PEFT."""
    mergeable: ClassVar[bool] = True
    """Its update is a fixed weight delta, so a merged checkpoint can hold it."""
    quantized_experts_refusal: ClassVar[str | None] = None
    """Why it cannot train over quantized experts (`model.cold_experts` / `model.hot_experts`); None: it can."""

    def __init__(self, method: Method, variant: Variant) -> None:
        self.method, self.variant = method, variant

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.method.value}, {self.variant.value})"

    @property
    def chooses_hot_experts(self) -> bool:
        """Profiles and selects its own hot experts (a LoRI-S run keeps its LoRI-D adapter's)."""
        return self.adapts_hot_experts and not self.continues_from_lori_d

    def check(self, config: AdapterSettings) -> None:
        """Raise `HelloraError` naming the field when `config` asks this method for something it cannot do."""

    def layer_classes(self, config: AdapterSettings) -> tuple[LayerFactory, LayerFactory | None, LayerFactory]:
        """(Linear wrapper, router wrapper or None, fused-experts weights class) that `attach_adapters` uses."""
        from hellora.adapters.experts import ExpertLoRAWeights
        from hellora.adapters.linear import LoRALinear
        from hellora.adapters.router import RouterLoRA

        return LoRALinear, RouterLoRA, ExpertLoRAWeights

    def adapter_entries(self, matrix: Matrix, config: AdapterSettings) -> tuple[int, int]:
        """(all entries, B entries) of the adapter on one (out, in) weight; also its multiply-adds per input row."""
        return config.r * (matrix.inp + matrix.out), config.r * matrix.out

    def trainable_by_role(self, entries: Mapping[str, int], b_entries: Mapping[str, int],
                          config: AdapterSettings) -> Mapping[str, int]:
        """Trained entries per role, from all and B entries per role (before any mask exists)."""
        return entries

    def report_fields(self, config: AdapterSettings) -> dict[str, Any]:
        """Settings of this method a parameter report adds (LoRI-S's density, LoRAMoE's N)."""
        return {}

    def label_for(self, selection: Mapping[str, Any], profile: Mapping[str, Any] | None) -> str:
        """The report label of a run, from its config's selection and profile sections."""
        return self.label
