"""`hellora doctor`: what this machine will run, whether the expert kernels are right here, and how fast.

    hellora doctor [--json] [--no-bench]

1. versions of python, torch, transformers, peft, triton, hellora; the device;
2. which expert path `HELLORA_EXPERT_KERNEL` resolves to for hellora (a few hot experts) and for LoRA on every
   expert, and why;
3. the Triton self-check (`kernels/selfcheck.py`) run now on a small OLMoE-like layer in the device's training
   dtype: passed, failed (and why), or not applicable (no CUDA, or triton missing), with the torch backend's own
   agreement with the explicit per-expert loop;
4. a few-second micro-bench on a one-layer reduced OLMoE: frozen vs hellora vs PEFT `target_parameters`.
"""

from __future__ import annotations

import importlib.metadata
import platform
from dataclasses import dataclass

import torch

from hellora.kernels import selfcheck, triton_subset_lora
from hellora.kernels.reference import expert_subset_lora_
from hellora.kernels.routing import sort_by_expert
from hellora.kernels.subset_lora import (BACKEND_ENV, ColumnBlock, TorchSubsetLoRA, _torch_backend,
                                         expert_kernel_choice, grouped_linear_subset_lora, triton_usable)


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def versions() -> dict:
    return {"python": platform.python_version(), **{n: _version(n) for n in
            ("torch", "transformers", "peft", "accelerate", "triton", "hellora")}}


def device_info() -> dict:
    if torch.cuda.is_available():
        d = torch.device("cuda")
        return {"type": "cuda", "name": torch.cuda.get_device_name(d),
                "capability": ".".join(map(str, torch.cuda.get_device_capability(d))),
                "memory_gib": round(torch.cuda.get_device_properties(d).total_memory / 2 ** 30, 1),
                "bf16": torch.cuda.is_bf16_supported()}
    return {"type": "cpu", "name": platform.processor() or platform.machine(), "threads": torch.get_num_threads()}


@dataclass(frozen=True)
class ProbeLayer:
    """The shape of the small fused gate_up layer `_layer` builds: experts, hot experts, tokens (4 routed each),
    hidden and intermediate sizes, LoRA rank, and the seed of its random values."""

    num_experts: int = 16
    hot: tuple[int, ...] = (1, 5, 9)
    tokens: int = 96
    hidden: int = 128
    inter: int = 64
    r: int = 16
    seed: int = 0


def _layer(device, dtype, shape: ProbeLayer = ProbeLayer()):
    """A small fused gate_up layer of `shape`: routing, x (S, H), weight (E, 2I, H), blocks and LoRA pairs."""
    num_experts, hot, tokens, hidden, inter, r = (shape.num_experts, shape.hot, shape.tokens, shape.hidden,
                                                  shape.inter, shape.r)
    g = torch.Generator().manual_seed(shape.seed)
    idx = torch.stack([torch.randperm(num_experts, generator=g)[:4] for _ in range(tokens)])
    routing = sort_by_expert(idx.to(device), num_experts)
    x = torch.randn(tokens * 4, hidden, generator=g).to(device, dtype)
    weight = (torch.randn(num_experts, 2 * inter, hidden, generator=g) / hidden ** 0.5).to(device, dtype)
    blocks = [ColumnBlock(0, 1, inter), ColumnBlock(inter, 1, inter)]
    pairs = [((torch.randn(len(hot), r, hidden, generator=g) / hidden ** 0.5).to(device, dtype),
              (torch.randn(len(hot), inter, r, generator=g) / r ** 0.5).to(device, dtype)) for _ in blocks]
    return routing, x, weight, blocks, pairs, list(hot)


def expert_paths() -> dict:
    """What `HELLORA_EXPERT_KERNEL` resolves to on this device, for hellora and for LoRA on every expert."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    choice = expert_kernel_choice()
    routing, x, _, _, pairs, hot = _layer(device, dtype)
    all_pairs = [(torch.zeros(16, a.shape[1], a.shape[2], device=device, dtype=dtype),
                  torch.zeros(16, b.shape[1], b.shape[2], device=device, dtype=dtype)) for a, b in pairs]
    out = {"HELLORA_EXPERT_KERNEL": choice, "HELLORA_KERNEL_SELFCHECK": selfcheck.mode()}
    if choice == "reference":
        why = "asked for: in-place adds under plain autograd (slow; for measuring)"
        return {**out, "hellora": "reference", "lora": "reference", "why": why}
    if triton_usable(x):
        checked = " after its first-call self-check" if choice == "auto" and selfcheck.mode() != "off" else ""
        why = f"Triton kernels{checked} ({device.type}, triton {_version('triton')})"
        return {**out, "hellora": "triton", "lora": "triton", "why": why}
    reasons = []
    if device.type != "cuda":
        reasons.append("no CUDA device")
    if not triton_subset_lora.available():
        reasons.append("triton not importable")
    if choice in ("torch", "loop"):
        reasons.append(f"{BACKEND_ENV}={choice}")
    lora = "torch-grouped" if _torch_backend(x, routing, list(range(16)), all_pairs) is not TorchSubsetLoRA \
        else "torch-loop"
    why = (", ".join(reasons) or "torch backend") + "; hellora: a matmul pair per hot expert; lora: " + (
        "one grouped_mm per LoRA factor over all experts" if lora == "torch-grouped" else
        "per-expert loop (grouped_mm unavailable for this dtype/device, or asked for)")
    return {**out, "hellora": "torch-loop", "lora": lora, "why": why}


def run_selfcheck() -> dict:
    """The Triton self-check on a small layer now (CUDA in bf16; the CPU interpreter when the check is forced on),
    and the torch backend against the float64 per-expert loop."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    routing, x, weight, blocks, pairs, hot = _layer(device, dtype)
    ids = torch.tensor(hot, device=device)
    result: dict[str, object] = {}
    # torch backend vs an explicit float64 loop over hot experts' rows (forward only: a quick sanity check)
    with torch.no_grad():
        out = grouped_linear_subset_lora(x, weight, routing, None, False, hot, ids, blocks, pairs, 2.0,
                                         backend=TorchSubsetLoRA).double()
        bounds = routing.segment_bounds()
        ref = torch.cat([x[bounds[e]:bounds[e + 1]].double() @ weight[e].double().t() for e in range(16)])
        for blk, (a, b) in zip(blocks, pairs):
            expert_subset_lora_(blk.of(ref), x.double(), routing, hot, a.double(), b.double(), 2.0)
    err = float((out - ref).abs().max() / ref.abs().max())
    result["torch_vs_float64_loop"] = {"relative_error": err, "ok": err <= selfcheck.TOLERANCE[dtype]}
    if not triton_subset_lora.available():
        result["triton"] = "not applicable: triton is not installed"
        return result
    if device.type != "cuda" and not selfcheck.cpu_interpreter_allowed():
        result["triton"] = ("not applicable: no CUDA device (HELLORA_KERNEL_SELFCHECK=1 with TRITON_INTERPRET=1 "
                            "runs it in Triton's interpreter)")
        return result
    from hellora.kernels.triton_subset_lora import TritonSubsetLoRA

    selfcheck.reset()
    xs = x.clone().requires_grad_()
    lora = [t.clone().requires_grad_() for p in pairs for t in p]

    def apply(xv, ls, backend):
        from hellora.kernels.subset_lora import _GroupedSubsetLoRA

        return _GroupedSubsetLoRA.apply(xv, weight, None, routing, False, hot, ids, blocks, 2.0, backend, *ls)

    import warnings

    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        passed = selfcheck.triton_passes(selfcheck.shape_key(xs, blocks, pairs), apply, TritonSubsetLoRA,
                                         TorchSubsetLoRA, xs, lora, routing)
    result["triton"] = "passed" if passed else next(iter(selfcheck.results().values()))
    result["triton_shape"] = next(iter(selfcheck.results()))
    selfcheck.reset()  # the real model's shapes are checked on their own first calls
    return result


def micro_bench() -> dict:
    """frozen vs hellora vs PEFT `target_parameters` on a one-layer reduced OLMoE (a few seconds)."""
    from hellora.bench.throughput import BenchConfig, run_bench

    small = {"hidden_size": 256, "intermediate_size": 128, "num_experts": 16, "num_experts_per_tok": 4,
             "vocab_size": 1024, "num_attention_heads": 4, "num_key_value_heads": 4}
    cuda = torch.cuda.is_available()
    cfg = BenchConfig(layers=1, batch=2 if cuda else 1, seq=256 if cuda else 64,
                      dtype="bfloat16" if cuda else "float32", warmup=1, steps=3,
                      setups=("frozen", "hellora", "peft-lora"), overrides=small, interleave=True)
    result = run_bench(cfg, progress=False)
    return {name: {"step_s": row["step_s"], "x_frozen": row["x_frozen"], "flop_floor": row["flop_floor"]}
            for name, row in result["rows"].items()}


def doctor(bench: bool = True) -> dict:
    report = {"versions": versions(), "device": device_info(), "expert_path": expert_paths(),
              "selfcheck": run_selfcheck()}
    if bench:
        report["micro_bench"] = micro_bench()
    return report


def format_doctor(report: dict) -> str:
    v, d, p, c = report["versions"], report["device"], report["expert_path"], report["selfcheck"]
    lines = ["versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
             "device:   " + ", ".join(f"{k}={val}" for k, val in d.items()),
             f"expert path: hellora -> {p['hellora']}, lora -> {p['lora']}  ({p['why']})",
             f"  HELLORA_EXPERT_KERNEL={p['HELLORA_EXPERT_KERNEL']}, self-check mode {p['HELLORA_KERNEL_SELFCHECK']}",
             f"torch backend vs float64 loop: relative error {c['torch_vs_float64_loop']['relative_error']:.2e} "
             f"({'ok' if c['torch_vs_float64_loop']['ok'] else 'TOO LARGE'})",
             f"Triton self-check: {c['triton']}" + (f"  [{c['triton_shape']}]" if "triton_shape" in c else "")]
    if "micro_bench" in report:
        lines.append("micro-bench (one reduced OLMoE layer, s/step, x frozen, FLOP floor):")
        for name, row in report["micro_bench"].items():
            lines.append(f"  {name:<10} {row['step_s']:.4f}  {row['x_frozen']:.2f}x  floor {row['flop_floor']:.2f}")
    return "\n".join(lines)
