"""Per-GPU memory of a training run, before buying or booking GPUs: `hellora params --model M --gpus N [--fsdp]`.

An estimate from shapes alone (no weights read). Per GPU, in bytes:

    frozen       base weights in bf16 (2 B each): all of them, or 1/N of them with FSDP (loop/fsdp.py), plus,
                 with FSDP, the gathered copies alive at once: the root unit (embeddings, final norm, lm_head)
                 and two decoder layers (the one computing and the one prefetched)
    adapters     trainable weights in fp32 (4 B), on every GPU (FSDP replicates adapters)
    gradients    fp32 (4 B) per trainable weight
    optimizer    AdamW's two fp32 moments (8 B) per trainable weight
    activations  what autograd keeps for backward, in bf16 (2 B) per value, for B sequences of S tokens on this GPU:
                 per token and decoder layer, 10 H (norm inputs, q/k/v, attention output, residuals) plus
                 k (2 H + 3 I) for the MoE block (k routed copies of the input, gate/up output (2I), activation
                 (I), down output (H); shared experts are not counted); plus fp32 logits and their gradient,
                 8 V bytes per token. With gradient checkpointing each layer keeps only its input (H) and one
                 layer is recomputed at a time.

With `--cold-experts int8|nf4` (and `--hot-experts`), the routed experts' share of `frozen` is counted as torchao
stores them per expert (`quant/sizes.py`: codes, scales, the NF4 table), the rest of the base staying bf16.

Allocator fragmentation, CUDA context (~0.5-1 GB) and temporary buffers (the LoRA kernels' hot-row gathers,
attention workspaces) are not counted: keep 10-15 % of the card free.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from hellora.quant.sizes import moe_layer_expert_bytes
from hellora.utils.errors import HelloraError
from hellora.choices import ExpertPrecision

if TYPE_CHECKING:
    from hellora.models.shapes import ModelShapes

GB = 1e9
WEIGHT_BYTES = 2      # bf16 frozen base
MASTER_BYTES = 4      # fp32 adapters
GRAD_BYTES = 4
ADAMW_BYTES = 8
ACT_BYTES = 2         # bf16 activations
LOGIT_BYTES = 8       # fp32 logits + their gradient


@dataclass(frozen=True)
class ModelSizes:
    """Shapes that set memory. base: frozen parameters; largest_layer / root: parameters of the biggest decoder
    layer and of everything outside the decoder layers; trainable: adapter parameters that train."""

    base: int
    trainable: int
    largest_layer: int
    root: int
    hidden: int
    layers: int
    vocab: int
    expert_intermediate: int
    top_k: int
    moe_layers: int = 0
    num_experts: int = 0
    experts_transposed: bool = False  # gpt-oss stores gate_up (E, H, 2I): int8 scales are per stored row


@dataclass(frozen=True)
class ExpertStorage:
    """How the routed experts are stored (`model.cold_experts` / `model.hot_experts`); `num_hot` per MoE layer."""

    cold: ExpertPrecision = ExpertPrecision.KEEP
    hot: ExpertPrecision = ExpertPrecision.KEEP
    num_hot: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "cold", ExpertPrecision.parse(self.cold, "cold_experts"))
        object.__setattr__(self, "hot", ExpertPrecision.parse(self.hot, "hot_experts"))

    @property
    def quantized(self) -> bool:
        return self.cold is not ExpertPrecision.KEEP or self.hot is not ExpertPrecision.KEEP

    def to_dict(self) -> dict:
        return {"cold_experts": self.cold.value, "hot_experts": self.hot.value, "hot_per_layer": self.num_hot}


@dataclass(frozen=True)
class MemoryPlan:
    gpus: int
    fsdp: bool
    batch: int
    seq: int
    frozen: float
    adapters: float
    gradients: float
    optimizer: float
    activations: float
    activations_checkpointed: float
    experts: ExpertStorage | None = None

    @property
    def total(self) -> float:
        return self.frozen + self.adapters + self.gradients + self.optimizer + self.activations

    @property
    def total_checkpointed(self) -> float:
        return self.total - self.activations + self.activations_checkpointed

    def to_dict(self) -> dict:
        data = {**asdict(self), "total": self.total, "total_checkpointed": self.total_checkpointed}
        data["experts"] = self.experts.to_dict() if self.experts else None
        return data


def activation_bytes(sizes: ModelSizes, tokens: int, *, checkpointed: bool) -> float:
    """Bytes autograd keeps for `tokens` tokens (see the module docstring)."""
    per_layer = 10 * sizes.hidden + sizes.top_k * (2 * sizes.hidden + 3 * sizes.expert_intermediate)
    logits = LOGIT_BYTES * sizes.vocab * tokens
    if checkpointed:
        return ACT_BYTES * tokens * (sizes.layers * sizes.hidden + per_layer) + logits
    return ACT_BYTES * tokens * sizes.layers * per_layer + logits


def frozen_expert_bytes(sizes: ModelSizes, experts: ExpertStorage) -> tuple[int, int]:
    """(entries of the routed experts, their bytes as `experts` stores them), all MoE layers."""
    entries = sizes.moe_layers * sizes.num_experts * 3 * sizes.hidden * sizes.expert_intermediate
    stored = sizes.moe_layers * moe_layer_expert_bytes(
        experts.cold, experts.hot, num_experts=sizes.num_experts, num_hot=experts.num_hot, hidden=sizes.hidden,
        intermediate=sizes.expert_intermediate, compute_bytes=WEIGHT_BYTES, transposed=sizes.experts_transposed)
    return entries, stored


def plan_memory(sizes: ModelSizes, *, gpus: int, fsdp: bool, batch: int = 1, seq: int = 2048,
                experts: ExpertStorage | None = None) -> MemoryPlan:
    """Bytes per GPU of each part for `batch` sequences of `seq` tokens per GPU (one micro-batch)."""
    for name, value in (("gpus", gpus), ("batch", batch), ("seq", seq)):
        if value < 1:
            raise HelloraError(f"--{name} must be at least 1 (got {value})")
    if experts is not None and experts.quantized:
        if fsdp and gpus > 1:
            raise HelloraError("--fsdp: quantized experts are not sharded by FSDP here; plan one GPU per process "
                               "without --fsdp, or --cold-experts keep")
        if sizes.base == 0 or not sizes.moe_layers:
            raise HelloraError("--cold-experts: quantized experts need frozen routed experts (not full fine-tuning)")
        entries, stored = frozen_expert_bytes(sizes, experts)
        frozen: float = WEIGHT_BYTES * (sizes.base - entries) + stored  # bytes; a share of a sharded base below
    elif fsdp and gpus > 1:
        gathered = sizes.root + 2 * sizes.largest_layer
        frozen = WEIGHT_BYTES * (sizes.base / gpus + gathered)
    else:
        frozen = WEIGHT_BYTES * sizes.base
    tokens = batch * seq
    return MemoryPlan(gpus=gpus, fsdp=fsdp, batch=batch, seq=seq, frozen=frozen,
                      adapters=MASTER_BYTES * sizes.trainable, gradients=GRAD_BYTES * sizes.trainable,
                      optimizer=ADAMW_BYTES * sizes.trainable,
                      activations=activation_bytes(sizes, tokens, checkpointed=False),
                      activations_checkpointed=activation_bytes(sizes, tokens, checkpointed=True), experts=experts)


def model_sizes(model: str, trainable: int, *, trust_remote_code: bool = False) -> ModelSizes:
    """`ModelSizes` of a preset (from its config values, no torch), folder or hub id (meta device: nothing is
    allocated)."""
    from hellora.models.presets import PRESETS

    if model not in PRESETS:
        return meta_model_sizes(model, trainable, trust_remote_code=trust_remote_code)
    from hellora.models.shapes import model_shapes

    shapes = model_shapes(PRESETS[model].config)
    return shape_sizes(shapes, trainable)


def shape_sizes(shapes: ModelShapes, trainable: int) -> ModelSizes:
    """`ModelSizes` of a `models.shapes.ModelShapes` (no torch)."""
    return _sizes(shapes.size, [layer.size for layer in shapes.layers], trainable, hidden=shapes.hidden,
                  vocab=shapes.vocab, expert_intermediate=shapes.expert_intermediate, top_k=shapes.top_k,
                  moe_layers=len(shapes.moe_layers), num_experts=shapes.num_experts)


def meta_model_sizes(model: str, trainable: int, *, trust_remote_code: bool = False,
                     overrides: dict | None = None) -> ModelSizes:
    """`ModelSizes` from the model built on the meta device (config `overrides` applied)."""
    from hellora.models.families import _find_decoder_layers, describe_moe_model
    from hellora.models.loading import meta_model

    net = meta_model(model, trust_remote_code=trust_remote_code, overrides=overrides)
    spec = describe_moe_model(net)
    _, stack = _find_decoder_layers(net)
    layer_sizes = [sum(p.numel() for p in layer.parameters()) for layer in stack]
    total = sum(p.numel() for p in net.parameters())
    moe = spec.moe_layers[0]
    if moe.layout is not None:
        intermediate = moe.layout.intermediate_size
    else:
        config = net.config
        intermediate = getattr(config, "moe_intermediate_size", None) or config.intermediate_size
    return _sizes(total, layer_sizes, trainable, hidden=net.config.hidden_size, vocab=net.config.vocab_size,
                  expert_intermediate=intermediate, top_k=spec.top_k, moe_layers=len(spec.moe_layers),
                  num_experts=spec.num_experts, experts_transposed=bool(moe.layout and moe.layout.transposed))


def _sizes(total: int, layer_sizes: list[int], trainable: int, **shape) -> ModelSizes:
    """`ModelSizes` from the parameter count of the model and of each decoder layer."""
    base = 0 if trainable >= total else total  # full fine-tuning: every weight is a trainable one
    return ModelSizes(base=base, trainable=trainable, largest_layer=max(layer_sizes), root=total - sum(layer_sizes),
                      layers=len(layer_sizes), **shape)


def format_plan(plan: MemoryPlan) -> str:
    """The plan as lines of GB (1e9 bytes) per GPU."""
    how = "FSDP (base sharded)" if plan.fsdp and plan.gpus > 1 else ("replicated (DDP)" if plan.gpus > 1 else
                                                                    "one GPU")
    rows = [f"per-GPU memory, {plan.gpus} GPU(s), {how}, micro-batch {plan.batch} x {plan.seq} tokens:",
            f"  frozen weights   {plan.frozen / GB:8.2f} GB",
            f"  adapters         {plan.adapters / GB:8.2f} GB",
            f"  gradients        {plan.gradients / GB:8.2f} GB",
            f"  optimizer state  {plan.optimizer / GB:8.2f} GB",
            f"  activations      {plan.activations / GB:8.2f} GB  "
            f"({plan.activations_checkpointed / GB:.2f} GB with gradient checkpointing)",
            f"  total            {plan.total / GB:8.2f} GB  ({plan.total_checkpointed / GB:.2f} GB with checkpointing)"]
    if plan.experts is not None and plan.experts.quantized:
        rows.insert(2, f"    (routed experts: {plan.experts.num_hot} hot per layer as {plan.experts.hot}, the rest as "
                       f"{plan.experts.cold}; torchao per-expert storage)")
    return "\n".join(rows)
