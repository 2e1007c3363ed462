"""What to adapt and how: the one typed config shared by the API, the CLI and recipes."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from hellora.utils.errors import HelloraError

METHODS = ("hellora", "lora")
PLACEMENTS = ("pure", "gate", "all")
INITS = ("default", "random")
DTYPES = ("float32", "bfloat16", "float16")


@dataclass
class AdapterConfig:
    """LoRA hyper-parameters and placement.

    method:    "hellora" adapts only the placement's hot experts; "lora" adapts every expert.
    r, alpha:  rank and scaling numerator; the update is (alpha / r) * B @ A (paper: r=32, alpha=64).
    placement: "pure" = experts only (hot routed experts, shared experts, dense MLPs);
               "gate" = pure + router; "all" = gate + attention projections (the paper's default).
    router:    adapt the router (None = automatic: yes for fused transformers families, no for remote-code
               DeepSeekMoE whose `MoEGate` the paper's PEFT setup could not target).
    init:      "default" = A Kaiming-uniform, B zero (the update starts at 0, as PEFT);
               "random" = B random too, so tests see a non-zero update from the first step.
    adapter_dtype: dtype of the trainable adapter weights (compute happens in the activations' dtype).
    """

    method: str = "hellora"
    r: int = 32
    alpha: float = 64.0
    dropout: float = 0.0
    placement: str = "all"
    router: bool | None = None
    init: str = "default"
    adapter_dtype: str = "float32"
    seed: int = 0
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise HelloraError(f"adapter.method: unknown method {self.method!r}; choose one of {', '.join(METHODS)}")
        if not isinstance(self.r, int) or self.r < 1:
            raise HelloraError(f"adapter.r: rank must be a positive integer, got {self.r!r}")
        if not (isinstance(self.alpha, (int, float)) and self.alpha > 0):
            raise HelloraError(f"adapter.alpha: must be a positive number, got {self.alpha!r}")
        if not 0.0 <= float(self.dropout) < 1.0:
            raise HelloraError(f"adapter.dropout: must be in [0, 1), got {self.dropout!r}")
        if self.placement not in PLACEMENTS:
            raise HelloraError(
                f"adapter.placement: unknown placement {self.placement!r}; choose one of {', '.join(PLACEMENTS)}"
            )
        if self.init not in INITS:
            raise HelloraError(f"adapter.init: unknown init {self.init!r}; choose one of {', '.join(INITS)}")
        if self.adapter_dtype not in DTYPES:
            raise HelloraError(f"adapter.adapter_dtype: choose one of {', '.join(DTYPES)}, got {self.adapter_dtype!r}")

    @property
    def scale(self) -> float:
        return float(self.alpha) / self.r

    @property
    def adapts_attention(self) -> bool:
        return self.placement == "all"

    @property
    def adapts_router_placement(self) -> bool:
        return self.placement in ("gate", "all")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, where: str = "adapter") -> "AdapterConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise HelloraError(f"{where}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(known))}")
        return cls(**data)
