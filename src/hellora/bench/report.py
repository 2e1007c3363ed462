"""`hellora bench`'s derived columns (ratios to the frozen step, the FLOP floor, adapter FLOPs) and its table.

The FLOP floor of a setup is its step-time ratio to `frozen` divided by its FLOP ratio to `frozen`: 1.00 means
the setup's extra time is exactly its extra arithmetic, above 1 is overhead (launches, Python, memory traffic).
Being a ratio of ratios it compares across devices, which raw step times do not.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hellora.models.families import MoEModelSpec


def _experts_flops(module_flops: dict[str, int], spec) -> int:
    return sum(module_flops.get(m.experts_path, 0) for m in spec.moe_layers)


def add_ratios(rows: dict[str, dict], spec: MoEModelSpec, tokens: int) -> None:
    """Add x_frozen, flop_ratio, flop_floor and measured-vs-analytic adapter FLOPs per token to each row, in
    place; the per-module forward FLOPs are folded into the experts' total and dropped."""
    frozen = rows.get("frozen")
    base_step = frozen["step_s"] if frozen else None
    base_costs = frozen["costs"] if frozen else None
    base_experts = _experts_flops(base_costs["module_forward_flops"], spec) if base_costs else None
    for row in rows.values():
        costs = row["costs"]
        modules = costs.pop("module_forward_flops")
        costs["experts_forward_flops"] = _experts_flops(modules, spec)
        row["x_frozen"] = round(row["step_s"] / base_step, 3) if base_step else None
        if not base_costs:
            row["flop_ratio"] = row["flop_floor"] = None
            continue
        row["flop_ratio"] = round(costs["step_flops"] / base_costs["step_flops"], 4)
        row["flop_floor"] = round(row["x_frozen"] / row["flop_ratio"], 3)
        analytic = row.get("adapter_flops_analytic")
        measured = {
            "measured_forward_per_token": round((costs["forward_flops"] - base_costs["forward_flops"]) / tokens),
            "measured_experts_per_token": round((costs["experts_forward_flops"] - base_experts) / tokens),
        }
        if analytic:
            experts = analytic["by_role"].get("experts", 0.0)
            measured.update(analytic_forward_per_token=round(analytic["forward_per_token"]),
                            analytic_experts_per_token=round(experts))
            if experts:
                measured["experts_measured_over_analytic"] = round(measured["measured_experts_per_token"] / experts, 4)
        row["adapter_flops"] = measured


def _mib(n: int) -> str:
    return f"{n / 2 ** 20:.1f}"


def format_table(result: dict) -> str:
    head = (f"{'setup':<22}{'s/step':>9}{'x frozen':>9}{'GFLOP':>9}{'x FLOP':>8}{'floor':>7}{'saved MiB':>10}"
            f"{'state MiB':>10}{'peak GiB':>9}{'trainable':>12}")
    lines = [head]
    for name, row in result["rows"].items():
        c = row["costs"]
        peak = f"{row['peak_gib']:.2f}" if row["peak_gib"] is not None else "n/a"
        state = c["grad_bytes"] + c["optimizer_state_bytes"] + c["trainable_param_bytes"]
        ratio = f"{row['flop_ratio']:.3f}" if row.get("flop_ratio") else "-"
        floor = f"{row['flop_floor']:.2f}" if row.get("flop_floor") else "-"
        lines.append(f"{name:<22}{row['step_s']:>9.4f}{row['x_frozen'] or 0:>9.2f}{c['step_flops'] / 1e9:>9.2f}"
                     f"{ratio:>8}{floor:>7}{_mib(c['saved_for_backward_bytes']):>10}{_mib(state):>10}{peak:>9}"
                     f"{row['trainable']:>12,}")
    lines.append("state = trainable parameters + gradients + optimizer state; saved = tensors kept for backward "
                 "(parameters excluded); peak: CUDA only")
    for name, row in result["rows"].items():
        a = row.get("adapter_flops") or {}
        if "analytic_experts_per_token" in a:
            lines.append(f"{name}: expert-adapter forward FLOPs/token measured {a['measured_experts_per_token']:,} "
                         f"vs `hellora flops` {a['analytic_experts_per_token']:,} "
                         f"(x{a.get('experts_measured_over_analytic', 0):.4f}); all adapters measured "
                         f"{a['measured_forward_per_token']:,} vs {a['analytic_forward_per_token']:,}")
    lines += _storage_lines(result["rows"])
    if result.get("routing"):
        lines.append(f"hot experts' share of assignments: {result['routing']['hot_share_mean']:.3f}")
    if result.get("profiling"):
        lines.append(f"forward-only profiling of 10% of an epoch = "
                     f"{100 * result['profiling']['fraction_of_epoch_at_10pct']:.2f}% of a training epoch")
    return "\n".join(lines)


def _storage_lines(rows: dict) -> list[str]:
    """Host memory per setup (model bytes, peak RSS of its steps) and each @int8 / @nf4 setup's step time against
    the same setup with its experts kept, when both ran."""
    lines = []
    if any(row.get("model_mib") is not None for row in rows.values()):
        lines.append("host memory: " + "; ".join(
            f"{name} model {row['model_mib']:.1f} MiB, peak RSS "
            + (f"{row['peak_rss_mib']:.0f} MiB" if row.get("peak_rss_mib") is not None else "n/a")
            for name, row in rows.items() if row.get("model_mib") is not None))
    for name, row in rows.items():
        kept = "@".join(p for p in name.split("@") if p not in ("int8", "nf4"))
        if kept != name and kept in rows:
            lines.append(f"{name}: step time x{row['step_s'] / rows[kept]['step_s']:.2f} of {kept}, model "
                         f"x{row['model_mib'] / rows[kept]['model_mib']:.3f}" if row.get("model_mib") else
                         f"{name}: step time x{row['step_s'] / rows[kept]['step_s']:.2f} of {kept}")
    return lines
