"""`hellora bench`: training-step time and peak memory of several adapter setups, side by side in one process.

    hellora bench --model olmoe-1b-7b --layers 4 --batch 8 --seq 512 --dtype bfloat16 --k 8 --hot-share 0.5

Setups, all on the same model and the same inputs, one after another:
    frozen      the backbone with no adapters, input gradients only (the floor)
    hellora     attention + router + the k hot experts of each layer (hellora)
    lora        attention + router + every expert (hellora's own kernels)
    peft-lora   stock PEFT: q/k/v/o, router weight and all experts through `target_parameters`
    peft-attn   stock PEFT: q/k/v/o only
`hellora` and `lora` take suffixes to measure one optimisation against its absence in the same run: a kernel,
`@reference` (in-place adds under plain autograd, what the one-node op replaced), `@torch` (the op; batched
grouped products when every expert is hot), `@loop` (the op with per-expert matmuls always) or `@triton` (the
op's Triton kernels; CUDA), and `@unfused` (q/k/v LoRA without the shared A
product). `hellora@reference@unfused` is the first version. Without suffixes: the defaults.
One step = forward + backward + AdamW on the trainable parameters; the median of `steps` timed steps after
`warmup` steps is reported, with peak CUDA memory (CPU reports none: "n/a") and ratios to `frozen`. One more
step per setup, after the timed ones, measures its device-independent costs (`costs.py`: FLOPs, bytes saved for
backward, parameter / gradient / optimizer-state bytes); `report.py` derives the FLOP floor from them.

Routing skew: real data sends about half of a layer's assignments to its top-k experts (the paper's Figure 1),
random weights do not. `hot_share` rewrites each layer's routing once, for the whole benchmark, so that k fixed
experts receive about that share; the share actually obtained is measured and reported. The profiling cost (the
paper's overhead) is estimated as forward-only profiling of 10% of an epoch relative to a training epoch.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from hellora.adapters import remove_adapters
from hellora.bench.costs import measure_step_costs, routing_profile
from hellora.bench.memory import peak_rss_mib, reset_peak_rss, resident_mib
from hellora.bench.report import add_ratios
from hellora.bench.setups import (
    KERNEL_SETUPS,
    SETUPS,
    check_setup,
    expert_kernel,
    install_routing,
    set_up,
    stepper,
)
from hellora.flops import adapter_flops
from hellora.models.families import describe_moe_model
from hellora.placement import HotExpertPlacement
from hellora.profiling import ExpertActivationCounter
from hellora.choices import Strategy, resolve_hot_k

if TYPE_CHECKING:
    from hellora.models.families import MoEModelSpec


@dataclass
class BenchConfig:
    model: str = "olmoe-1b-7b"
    layers: int | None = 4
    batch: int = 8
    seq: int = 512
    dtype: str = "bfloat16"
    k: int | None = None
    r: int = 32
    alpha: float = 64.0
    hot_share: float | None = 0.5
    warmup: int = 3
    steps: int = 10
    setups: tuple = SETUPS
    seed: int = 0
    overrides: dict | None = None
    interleave: bool = False  # time setups round-robin on model copies (`interleaved.py`): for shared machines


def skewed_routing(spec: MoEModelSpec, k: int, hot_share: float, tokens: int, seed: int) -> dict[int, tuple]:
    """Per MoE layer: (hot experts, top_k_index (T, k_router)) where hot experts get ~hot_share of assignments."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for moe in spec.moe_layers:
        e, top_k = moe.num_experts, moe.top_k
        hot = torch.randperm(e, generator=g)[:k]
        # weights so that a multinomial draw without replacement lands on hot experts ~hot_share of the time
        w = torch.full((e,), (1 - hot_share) / max(1, e - k))
        w[hot] = hot_share / k
        index = torch.multinomial(w.expand(tokens, e), top_k, replacement=False, generator=g)
        out[moe.layer_index] = (sorted(hot.tolist()), index)
    return out


def _time_steps(model, batch, warmup: int, steps: int, device) -> tuple[float, float | None, int, dict]:
    """Median step time, peak CUDA GiB (None elsewhere), trainable count, and one extra step's measured costs."""
    forward, optimizer = stepper(model, batch)
    times = []
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    for i in range(warmup + steps):
        start = time.perf_counter()
        loss = forward()
        loss.backward()
        if optimizer is not None:
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2 ** 30 if device.type == "cuda" else None
    costs = measure_step_costs(model, forward, optimizer)  # after the timed steps: the hooks cost time
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return statistics.median(times), peak, trainable, costs


def run_bench(cfg: BenchConfig, progress: bool = True) -> dict:
    from hellora.models.loading import DTYPES, load_config, model_from_config
    from hellora.utils.meta import run_metadata

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    overrides = dict(cfg.overrides or {})
    if cfg.layers:
        overrides["num_hidden_layers"] = cfg.layers
    config = load_config(cfg.model, overrides=overrides)
    torch.manual_seed(cfg.seed)
    dtype = DTYPES[cfg.dtype]
    assert isinstance(dtype, torch.dtype)  # a dtype name: "auto" (the checkpoint's) has no meaning for random init
    with device:
        model = model_from_config(config, dtype=dtype)
    model.requires_grad_(False)
    spec = describe_moe_model(model)
    k = resolve_hot_k(cfg.k, spec.top_k)
    embedding = model.get_input_embeddings().weight
    assert isinstance(embedding, torch.Tensor)  # (vocab, hidden)
    vocab = embedding.shape[0]
    g = torch.Generator().manual_seed(cfg.seed)
    ids = torch.randint(0, vocab, (cfg.batch, cfg.seq), generator=g).to(device)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}
    tokens = cfg.batch * cfg.seq
    routing = skewed_routing(spec, k, cfg.hot_share, tokens, cfg.seed) if cfg.hot_share else None
    hot = HotExpertPlacement({l: r[0] for l, r in routing.items()} if routing else
                             {l: list(range(k)) for l in spec.moe_layer_indices}, spec.num_experts, Strategy.MANUAL, k=k)
    profile = routing_profile(spec, routing) if routing else None  # `hellora flops`' input for the same routing
    rows = {}
    for name in cfg.setups:
        check_setup(name)
    if cfg.interleave:
        from hellora.bench.interleaved import time_interleaved

        rows = time_interleaved(model, cfg, spec, hot, routing, batch, profile, progress)
    else:
        for name in cfg.setups:
            if progress:
                print(f"bench: {name} ...", flush=True)
            net, method, kernel, restore = set_up(model, name, cfg.r, cfg.alpha, spec, hot)
            handles = install_routing(net, spec, routing) if routing else []
            try:
                with expert_kernel(kernel):
                    model_mib = resident_mib(net)
                    reset_peak_rss()
                    step_s, peak, trainable, costs = _time_steps(net, batch, cfg.warmup, cfg.steps, device)
                    rss = peak_rss_mib()
                    analytic = adapter_flops(net, profile) if method in KERNEL_SETUPS else None
            finally:
                for h in handles:
                    h.remove()
                restore()
                if method in KERNEL_SETUPS:
                    remove_adapters(model)
                elif net is not model:
                    unload = net.unload  # the PEFT wrapper's: the base model back, without its LoRA
                    assert callable(unload)
                    model = unload()
                model.requires_grad_(False)
                if device.type == "cuda":
                    torch.cuda.empty_cache()
            rows[name] = {"step_s": round(step_s, 5), "peak_gib": round(peak, 2) if peak is not None else None,
                          "trainable": trainable, "tokens_per_s": round(tokens / step_s, 1), "costs": costs,
                          "model_mib": model_mib, "peak_rss_mib": rss,
                          "adapter_flops_analytic": analytic}
    add_ratios(rows, spec, tokens)
    result: dict[str, Any] = {"config": {k_: v for k_, v in cfg.__dict__.items()}, "rows": rows, "meta": run_metadata(cfg.seed),
              "model_shape": {"layers": len(spec.layers), "experts": spec.num_experts, "top_k": spec.top_k, "k": k}}
    result["routing"] = _measured_share(model, spec, batch, routing, hot) if routing else None
    train_row = rows.get("hellora") or next((r for n, r in rows.items() if n.startswith("hellora")), None)
    result["profiling"] = _profiling_cost(model, spec, batch, routing, train_row or rows.get("frozen"))
    return result


@torch.no_grad()
def _forward_s(model, spec, batch, routing) -> float:
    handles = install_routing(model, spec, routing) if routing else []
    try:
        with ExpertActivationCounter(model, spec):
            times = []
            for _ in range(3):
                start = time.perf_counter()
                model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
                if batch["input_ids"].device.type == "cuda":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - start)
    finally:
        for h in handles:
            h.remove()
    return statistics.median(times)


@torch.no_grad()
def _measured_share(model, spec, batch, routing, hot) -> dict:
    handles = install_routing(model, spec, routing)
    try:
        with ExpertActivationCounter(model, spec) as counter:
            model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
    finally:
        for h in handles:
            h.remove()
    shares = []
    for row, moe in enumerate(spec.moe_layers):
        counts = counter.counts[row]
        shares.append(float(counts[hot.experts[moe.layer_index]].sum() / counts.sum()))
    return {"hot_share_mean": round(sum(shares) / len(shares), 4)}


def _profiling_cost(model, spec, batch, routing, train_row) -> dict | None:
    """Forward-only profiling of 10% of an epoch / a training epoch, from per-batch times on the same batch."""
    if not train_row:
        return None
    forward = _forward_s(model, spec, batch, routing)
    return {"forward_s": round(forward, 5), "train_step_s": train_row["step_s"],
            "fraction_of_epoch_at_10pct": round(0.1 * forward / train_row["step_s"], 4)}
