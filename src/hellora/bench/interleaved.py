"""`hellora bench --interleave`: every setup on its own copy of the model, timed round-robin, step by step.

Why: on a shared machine the load changes over minutes, so setups timed one after another (the default) see
different machines and their ratios mean little. Here step i of every setup runs before step i+1 of any, in
alternating order (forward on even steps, reversed on odd ones), so every setup samples the same load over the
same minutes and the ratios of their medians compare like with like. It costs one model copy per setup in
memory, which is why it is an option (fine at reduced CPU shapes, not at full GPU shapes).
"""

from __future__ import annotations

import copy
import statistics
import time
from typing import TYPE_CHECKING, Any, Protocol

import torch

from hellora.bench.costs import measure_step_costs
from hellora.bench.setups import KERNEL_SETUPS, expert_kernel, install_routing, set_up, stepper
from hellora.flops import adapter_flops

if TYPE_CHECKING:
    from torch import nn

    from hellora.models.families import MoEModelSpec
    from hellora.placement import HotExpertPlacement
    from hellora.profiling.profile import ExpertProfile


class BenchSettings(Protocol):
    """What the interleaved timing reads of `throughput.BenchConfig` (which imports this module)."""

    batch: int
    seq: int
    r: int
    alpha: float
    warmup: int
    steps: int
    setups: tuple


def time_interleaved(model: nn.Module, cfg: BenchSettings, spec: MoEModelSpec, hot: HotExpertPlacement,
                     routing: dict[int, tuple] | None, batch: dict[str, torch.Tensor], profile: ExpertProfile | None,
                     progress: bool) -> dict[str, dict]:
    """Rows like `run_bench`'s, every setup timed round-robin (see the module doc), on the device `batch` is on."""
    device = batch["input_ids"].device
    tokens = cfg.batch * cfg.seq
    setups: dict[str, dict[str, Any]] = {}  # name -> its model copy, kernel, step function, times
    for name in cfg.setups:
        net, method, kernel, _ = set_up(copy.deepcopy(model), name, cfg.r, cfg.alpha, spec, hot)  # a copy
        handles = install_routing(net, spec, routing) if routing else []
        forward, optimizer = stepper(net, batch)
        setups[name] = dict(net=net, method=method, kernel=kernel, handles=handles, forward=forward,
                            optimizer=optimizer, times=[])
    names = list(setups)
    for i in range(cfg.warmup + cfg.steps):
        if progress:
            print(f"bench: round {i + 1}/{cfg.warmup + cfg.steps}", flush=True)
        for name in names if i % 2 == 0 else names[::-1]:
            s = setups[name]
            with expert_kernel(s["kernel"]):
                start = time.perf_counter()
                s["forward"]().backward()
                if s["optimizer"] is not None:
                    s["optimizer"].step()
                    s["optimizer"].zero_grad(set_to_none=True)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                if i >= cfg.warmup:
                    s["times"].append(time.perf_counter() - start)
    rows = {}
    for name, s in setups.items():
        with expert_kernel(s["kernel"]):
            costs = measure_step_costs(s["net"], s["forward"], s["optimizer"])
            analytic = adapter_flops(s["net"], profile) if s["method"] in KERNEL_SETUPS else None
        for h in s["handles"]:
            h.remove()
        step_s = statistics.median(s["times"])
        rows[name] = {"step_s": round(step_s, 5), "peak_gib": None, "step_times_s": [round(t, 4) for t in s["times"]],
                      "trainable": sum(p.numel() for p in s["net"].parameters() if p.requires_grad),
                      "tokens_per_s": round(tokens / step_s, 1), "costs": costs, "adapter_flops_analytic": analytic}
    return rows
