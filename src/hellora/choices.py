"""hellora's choices, typed, in one module: every string a recipe, a flag or an API call may choose from.

Each choice is a `str` enum, so members compare equal to their plain strings and serialise to YAML/JSON as those
strings (recipes keep `method: hellora`). Code compares members (`config.method is Method.HELLORA`, or `==` against
a member), never string literals; edges turn user text into members with `Choice.parse`, which raises one
`HelloraError` naming the field and the valid values.

    Method.parse("lora", "adapter.method")      # -> Method.LORA
    Method.parse("lorra", "adapter.method")     # HelloraError: adapter.method: unknown value 'lorra'; choose ...

Adding a value: add a member here, then handle it where its registry lives (see docs/architecture.md).
"""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

import yaml

from hellora.utils.errors import HelloraError

C = TypeVar("C", bound="Choice")


class Choice(str, Enum):
    """A string enum whose members are their own values (`str(Method.LORA) == "lora"`, also on Python 3.10)."""

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    def __repr__(self) -> str:  # messages quote the value a user typed: 'lora', not <Method.LORA: 'lora'>
        return repr(self.value)

    @classmethod
    def values(cls) -> tuple[str, ...]:
        return tuple(member.value for member in cls)

    @classmethod
    def parse(cls: type[C], value: object, field: str) -> C:
        """`value` as a member of this choice, or one error naming `field` and the valid values."""
        if isinstance(value, cls):
            return value
        try:
            return cls(value)
        except ValueError:
            raise HelloraError(f"{field}: unknown value {value!r}; choose one of {', '.join(cls.values())}") from None


class Method(Choice):
    """What is trained: hot-expert LoRA, LoRA on every expert, a LoRA mixture per expert FFN, or every weight."""

    HELLORA = "hellora"
    LORA = "lora"
    LORAMOE = "loramoe"
    FFT = "fft"


class Variant(Choice):
    """How each LoRA pair is parameterised (methods lora and hellora)."""

    NONE = "none"
    DORA = "dora"
    LORI_D = "lori_d"
    LORI_S = "lori_s"


class Targets(Choice):
    """Which modules carry adapters besides the experts: pure (experts only), gate (+ router), all (+ attention)."""

    PURE = "pure"
    GATE = "gate"
    ALL = "all"


class Strategy(Choice):
    """How hot experts are chosen (`hellora.placement.SELECTORS` holds one function per member).

    Every member but MANUAL selects from a routing profile's counts; FIRST_K needs only the layer count (the
    parameter accounting's stand-in: which experts are hot does not change how many weights train); RETENTION also
    reads a reference profile (`placement.NEEDS_REFERENCE`); MANUAL marks a placement written by hand, which no
    function selects.
    """

    LAYER = "layer"
    MODEL = "model"
    COLD = "cold"
    RANDOM = "random"
    COVERAGE = "coverage"
    ENTROPY = "entropy"
    COLD_ENTROPY = "cold-entropy"
    RETENTION = "retention"
    ALL = "all"
    FIRST_K = "first-k"
    MANUAL = "manual"


class ExpertPrecision(Choice):
    """How a group of frozen expert weights is stored (`model.cold_experts`, `model.hot_experts`): in the compute
    dtype, or quantized per expert by torchao (int8 weight-only per row, or NF4 with double-quantized scales)."""

    KEEP = "keep"
    INT8 = "int8"
    NF4 = "nf4"


class ProfileMode(Choice):
    """How routing is counted: the paper's LoRA warm-up, forward passes only, or not at all."""

    WARMUP = "warmup"
    FORWARD = "forward"
    NONE = "none"


class Scheduler(Choice):
    """Learning-rate schedule after linear warm-up."""

    COSINE = "cosine"
    LINEAR = "linear"
    CONSTANT = "constant"


class MixedPrecision(Choice):
    """Autocast during training (`train.mixed_precision`): auto (bf16 on CUDA where supported, else none), or as
    named."""

    AUTO = "auto"
    BF16 = "bf16"
    FP16 = "fp16"
    NO = "no"


class AdapterInit(Choice):
    """How a new adapter's B starts (`adapter.init`): zero, as PEFT does (default), or small random values."""

    DEFAULT = "default"
    RANDOM = "random"


class TrainTask(Choice):
    """Fine-tuning data formats (`hellora.data.tasks`)."""

    GSM8K = "gsm8k"
    CODEALPACA = "codealpaca"
    SAFERPACA = "saferpaca"
    SAFETY = "safety"
    SKILL = "skill"


class EvalTask(Choice):
    """Benchmarks `hellora eval` scores (`hellora.eval`)."""

    GSM8K = "gsm8k"
    HUMANEVAL = "humaneval"
    HEXPHI = "hexphi"
    ADVBENCH = "advbench"
    SKILL = "skill"


CHOICES: dict[str, type[Choice]] = {cls.__name__: cls for cls in (Method, Variant, Targets, Strategy, ProfileMode,
                                                                  Scheduler, TrainTask, EvalTask, ExpertPrecision,
                                                                  MixedPrecision, AdapterInit)}


def _represent_choice(dumper: yaml.representer.SafeRepresenter, value: Choice) -> yaml.Node:
    return dumper.represent_str(value.value)


# YAML writes a member as its plain string (`method: hellora`), so a saved config reads back as the recipe it was.
yaml.SafeDumper.add_multi_representer(Choice, _represent_choice)
yaml.Dumper.add_multi_representer(Choice, _represent_choice)


class Convention(Choice):
    """How adapter FLOPs are counted (`hellora.flops`): the adapters as attached, or the paper's Table 3 rule."""

    EXACT = "exact"
    PAPER = "paper"


class GenerationBackend(Choice):
    """What generates `hellora eval`'s completions (`hellora.eval.generation`): transformers, or vLLM on a merged
    checkpoint (`hellora.eval.vllm_backend`)."""

    HF = "hf"
    VLLM = "vllm"


class ExportFormat(Choice):
    """What `hellora export` writes (`hellora.adapters.export`): a stock-PEFT adapter folder, vLLM's per-expert
    MoE-LoRA layout (`hellora.adapters.export_vllm`), or the adapter merged into its base model."""

    PEFT = "peft"
    VLLM = "vllm"
    MERGED = "merged"


class ExpertStorage(Choice):
    """How a model stores one MoE block's routed experts (`hellora.models.families.MoELayerSpec.kind`): fused 3-D
    weights, or an `nn.ModuleList` of expert MLPs."""

    FUSED = "fused"
    MODULELIST = "modulelist"


class ContrastKind(Choice):
    """What a base-level contrast tests (`hellora.report.stats.base_contrast`): a difference (two-sided), or "not
    worse than by more than a margin" (one-sided, H0: diff <= -margin)."""

    SUPERIORITY = "superiority"
    NONINFERIORITY = "noninferiority"


class Alternative(Choice):
    """The alternative hypothesis of a test of mean(d) = 0: either sign, mean > 0, or mean < 0."""

    TWO_SIDED = "two-sided"
    GREATER = "greater"
    LESS = "less"


def resolve_hot_k(k: int | None, router_top_k: int) -> int:
    """Hot experts per layer: the requested `k`, else the router's own top-k (the paper's default).

    The one place this default is decided; presets may pass the paper's per-backbone k explicitly.
    """
    if k is None:
        return int(router_top_k)
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise HelloraError(f"k: hot experts per layer must be a positive integer, got {k!r}")
    return k
