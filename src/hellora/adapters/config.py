"""What to adapt and how: the one typed config shared by the API, the CLI and recipes."""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

from hellora.methods.base import AdapterMethod
from hellora.methods.registry import DEFAULT_METHOD, NO_VARIANT, get_method
from hellora.utils.dtypes import DTYPE_NAMES
from hellora.utils.errors import HelloraError
from hellora.choices import AdapterInit, Choice, Method, Targets, Variant

RENAMED = {"placement": "targets"}  # old key -> new key, still read (with a warning) from recipes and adapter files
DROPPED = ("extra",)  # keys older files may hold that nothing reads


@dataclass
class AdapterConfig:
    """LoRA hyper-parameters and the modules they target.

    method:    "hellora" adapts only the placement's hot experts; "lora" adapts every expert;
               "loramoe" puts a mixture of `loramoe_experts` rank-r LoRAs with a learned softmax router on every
               Linear of every expert FFN (routed, shared, dense MLP) and nothing else (the paper's Appendix F);
               "fft" is full fine-tuning: no adapter, every base weight trains.
    variant:   how each adapter pair is parameterised (methods "lora" and "hellora" only):
               "none" = plain LoRA; "dora" = DoRA, a trainable magnitude per output row on top of LoRA;
               "lori_d" = LoRI-D, A frozen at its random init and only B trained;
               "lori_s" = LoRI-S, A taken from a finished LoRI-D adapter (`lori_from`) and frozen, B restarted from
               zero and trained only on the top `lori_density` share of that adapter's |B| (one global threshold).
               HELLoRI-D / HELLoRI-S are the LoRI variants with method "hellora".
    r, alpha:  rank and scaling numerator; the update is (alpha / r) * B @ A (paper: r=32, alpha=64).
    targets:   "pure" = experts only (hot routed experts, shared experts, dense MLPs);
               "gate" = pure + router; "all" = gate + attention projections (the paper's default; the paper
               calls this choice "placement", a key still read as an alias of `targets`).
               Ignored by "loramoe", which adapts expert FFNs only.
    router:    adapt the router (None = automatic: yes for fused transformers families, no for remote-code
               DeepSeekMoE whose `MoEGate` the paper's PEFT setup could not target).
    init:      "default" = A Kaiming-uniform, B zero (the update starts at 0, as PEFT);
               "random" = B random too, so tests see a non-zero update from the first step.
    adapter_dtype: dtype of the trainable adapter weights (compute happens in the activations' dtype).
    lori_from: folder of the finished LoRI-D adapter a "lori_s" run takes its A and its mask from.
    lori_density: share of all B entries LoRI-S trains (LoRI's default 0.1).
    loramoe_experts: LoRA experts N per adapted Linear (LoRAMoE's default 6).
    loramoe_balance, loramoe_delta: weight and delta of LoRAMoE's localized balancing loss (0 = off, the default;
               see `hellora.adapters.loramoe.loramoe_balance_loss`).
    fuse_shared_inputs: attention projections called on one input (q/k/v; MLA's q_a/q and kv_a) compute their
               LoRA A products as one x @ cat(A)^T (plain LoRA / LoRI without dropout; a runtime optimisation:
               weights and their names are unchanged, see `hellora.adapters.shared_input`). False = one per projection.
    """

    method: Method = DEFAULT_METHOD
    r: int = 32
    alpha: float = 64.0
    dropout: float = 0.0
    targets: Targets = Targets.ALL
    router: bool | None = None
    init: AdapterInit = AdapterInit.DEFAULT
    adapter_dtype: str = "float32"
    seed: int = 0
    variant: Variant = NO_VARIANT
    lori_from: str | None = None
    lori_density: float = 0.1
    loramoe_experts: int = 6
    loramoe_balance: float = 0.0
    loramoe_delta: float = 0.1
    fuse_shared_inputs: bool = True

    def __post_init__(self) -> None:
        self.method = Method.parse(self.method, "adapter.method")
        self.targets = Targets.parse(self.targets, "adapter.targets")
        self.variant = Variant.parse(self.variant, "adapter.variant")
        if not isinstance(self.r, int) or self.r < 1:
            raise HelloraError(f"adapter.r: rank must be a positive integer, got {self.r!r}")
        if not (isinstance(self.alpha, (int, float)) and self.alpha > 0):
            raise HelloraError(f"adapter.alpha: must be a positive number, got {self.alpha!r}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise HelloraError(f"adapter.dropout: must be in [0, 1), got {self.dropout!r}")
        if self.init not in AdapterInit.values():
            raise HelloraError(f"adapter.init: unknown init {self.init!r}; "
                               f"choose one of {', '.join(AdapterInit.values())}")
        self.init = AdapterInit(self.init)
        if self.adapter_dtype not in DTYPE_NAMES:
            raise HelloraError(f"adapter.adapter_dtype: choose one of {', '.join(DTYPE_NAMES)}, got {self.adapter_dtype!r}")
        rules = get_method(self.method, self.variant)  # refuses a combination nobody registered
        if self.lori_from is not None and (not isinstance(self.lori_from, str) or not rules.continues_from_lori_d):
            raise HelloraError("adapter.lori_from: a LoRI-D adapter folder, used only with variant 'lori_s'")
        if not (isinstance(self.lori_density, (int, float)) and 0.0 < self.lori_density <= 1.0):
            raise HelloraError(f"adapter.lori_density: must be in (0, 1], got {self.lori_density!r}")
        if not isinstance(self.loramoe_experts, int) or self.loramoe_experts < 1:
            raise HelloraError(f"adapter.loramoe_experts: must be a positive integer, got {self.loramoe_experts!r}")
        if not (isinstance(self.loramoe_balance, (int, float)) and self.loramoe_balance >= 0):
            raise HelloraError(f"adapter.loramoe_balance: must be >= 0, got {self.loramoe_balance!r}")
        if not (isinstance(self.loramoe_delta, (int, float)) and 0.0 <= self.loramoe_delta < 1.0):
            raise HelloraError(f"adapter.loramoe_delta: must be in [0, 1), got {self.loramoe_delta!r}")
        if not isinstance(self.fuse_shared_inputs, bool):
            raise HelloraError(f"adapter.fuse_shared_inputs: must be true or false, got {self.fuse_shared_inputs!r}")
        rules.check(self)

    @property
    def placement(self) -> Targets:
        """The old name of `targets` (read-only; `AdapterConfig(placement=...)` is accepted too)."""
        warnings.warn("AdapterConfig.placement is deprecated; read .targets", FutureWarning, stacklevel=2)
        return self.targets

    @property
    def rules(self) -> AdapterMethod:
        """The registered method object of `method` + `variant` (`hellora.methods`): ask it, never the name."""
        return get_method(self.method, self.variant)

    @property
    def scale(self) -> float:
        return float(self.alpha) / self.r

    @property
    def adapts_attention(self) -> bool:
        return self.targets is Targets.ALL and self.rules.uses_targets

    @property
    def chooses_hot_experts(self) -> bool:
        """hellora picks its own hot experts (profile, then select); HELLoRI-S keeps its LoRI-D adapter's."""
        return self.rules.chooses_hot_experts

    @property
    def adapts_router_targets(self) -> bool:
        """The targets include the router (it is still skipped where `router` or the family says no)."""
        return self.targets in (Targets.GATE, Targets.ALL) and self.rules.uses_targets

    def adapts_router(self, fused: bool) -> bool:
        """Whether a MoE layer's router gets an adapter: the targets include it, and `router` says yes (None:
        routers of fused transformers families yes, remote-code module routers such as DeepSeekMoE's no)."""
        return self.adapts_router_targets and (self.router if self.router is not None else fused)

    def to_dict(self) -> dict:
        """Plain JSON/YAML values: choices as their strings."""
        return {k: (v.value if isinstance(v, Choice) else v) for k, v in asdict(self).items()}

    @staticmethod
    def upgrade_keys(data: dict, where: str | Callable[[str], str] = "adapter") -> dict:
        """`data` with renamed keys under their new names and dropped keys removed, warning once per key.

        `where` names the source in messages: a string, or a function of the key (each key's own file line).
        """
        data, source = dict(data), (where if callable(where) else lambda key: where)
        for old, new in RENAMED.items():
            if old in data:
                if new in data:
                    raise HelloraError(f"{source(old)}: both {old!r} and its new name {new!r} are set; keep {new!r}")
                warnings.warn(f"{source(old)}: key {old!r} is deprecated; rename it {new!r}", FutureWarning, stacklevel=3)
                data[new] = data.pop(old)
        for old in DROPPED:
            if old in data:
                warnings.warn(f"{source(old)}: key {old!r} is ignored (nothing reads it); remove it", FutureWarning,
                              stacklevel=3)
                del data[old]
        return data

    @classmethod
    def from_dict(cls, data: dict, where: str = "adapter") -> "AdapterConfig":
        data = cls.upgrade_keys(data, where)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise HelloraError(f"{where}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(known))}")
        return cls(**data)



def _accept_old_keywords(init: Callable[..., None]) -> Callable[..., None]:
    """Wrap the dataclass __init__ so the old keyword `placement=` still sets `targets`, with a warning."""

    @functools.wraps(init)
    def __init__(self: AdapterConfig, *args: Any, placement: str | None = None, **kwargs: Any) -> None:
        if placement is not None:
            if "targets" in kwargs:
                raise HelloraError("adapter: both 'placement' and its new name 'targets' are set; keep 'targets'")
            warnings.warn("AdapterConfig(placement=...) is deprecated; use targets=...", FutureWarning, stacklevel=2)
            kwargs["targets"] = placement
        init(self, *args, **kwargs)

    return __init__


AdapterConfig.__init__ = _accept_old_keywords(AdapterConfig.__init__)  # type: ignore[method-assign]  # the old keyword
