"""`hellora report RUN_DIR...`: the paper's tables and figures from saved run folders (JSON only).

Each run folder (written by `hellora train`) contributes one row keyed by its method label (LoRA, HELLoRA,
DoRA, LoRI-D, HELLoRI-S, LoRAMoE, FFT; selection strategy, placement and k when they differ from the default),
its params %, training throughput and evaluation scores. Runs that differ only in seed are merged into
mean +- std. Figures: per-run expert activation heatmaps with hot experts boxed, a throughput bar chart, and
warm-up stability (Jaccard / coverage against the largest warm-up fraction of the same model and task).
Seed statistics (`stats_table`): per method n / mean / std / 95% CI of the main metric, and the paper's
orderings as paired tests over runs with matching seeds (hellora.report.stats).
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path

import yaml

from hellora.methods.registry import get_method
from hellora.placement import HotExpertPlacement
from hellora.profiling.profile import ExpertProfile, compare_profiles
from hellora.quant.run import storage_label
from hellora.utils.errors import HelloraError
from hellora.utils.io import atomic_write, atomic_write_text, read_json
from hellora.vocab import Method, Variant

METRICS = [("proxy", "accuracy", "Target acc"), ("proxy", "others", "Other skills"), ("gsm8k", "accuracy", "GSM8K"),
           ("humaneval", "pass@1", "HE@1"), ("humaneval", "pass@5", "HE@5"), ("humaneval", "pass@10", "HE@10"),
           ("hexphi", "refusal_rate", "HEx-PHI"), ("advbench", "refusal_rate", "AdvBench"),
           ("skill", "accuracy", "Skill acc")]


def method_label(adapter: dict, selection: dict, profile: dict | None = None) -> str:
    """A run's row label: its method object's (`AdapterMethod.label_for`), then its targets when not "all"."""
    method = Method.parse(adapter.get("method", "hellora"), "config.yaml: adapter.method")
    variant = Variant.parse(adapter.get("variant", "none"), "config.yaml: adapter.variant")
    rules = get_method(method, variant)
    label = rules.label_for(selection, profile)
    if not rules.uses_targets:
        return label
    targets = adapter.get("targets", adapter.get("placement", "all"))  # run folders may hold the old key
    if targets != "all":
        label += f" [{targets}]"
    return label


def load_run(path: Path) -> dict:
    status = read_json(path / "run.json", "run status")
    config = yaml.safe_load((path / "config.yaml").read_text()) if (path / "config.yaml").is_file() else {}
    scores = {}
    for file in sorted((path / "eval").glob("eval_*.json")) if (path / "eval").is_dir() else []:
        report = read_json(file, "eval result")
        s = report["scores"]
        if report["task"] == "proxy":  # the proxy study's exact-match accuracies
            scores.update({("proxy", k): 100 * v for k, v in s.items()})
        elif "headline" in report:  # hellora.eval.run: the protocol's headline numbers
            scores.update({(report["task"], k): 100 * v for k, v in report["headline"].items()})
        elif report["task"] == "gsm8k":
            scores[("gsm8k", "accuracy")] = 100 * s["accuracy"]["paper"]
        elif report["task"] == "humaneval":
            scores.update({("humaneval", k): 100 * v for k, v in s.items() if k.startswith("pass@")})
        else:
            scores[(report["task"], "refusal_rate")] = 100 * s["refusal_rate"]
    return {"path": path, "status": status, "config": config, "scores": scores,
            "label": method_label(config.get("adapter", {}), config.get("selection", {}), config.get("profile"))
            + storage_label(config.get("model") or {}),  # e.g. " cold=nf4": experts stored quantized
            "group": (config.get("model", {}).get("name"), config.get("data", {}).get("task"))}


def _mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{statistics.mean(values):.2f} +- {statistics.stdev(values):.2f}"


def results_table(runs: list[dict]) -> str:
    """Markdown: one row per method label (seeds merged), columns Params % / throughput / metrics present."""
    by_label = defaultdict(list)
    for run in runs:
        by_label[run["label"]].append(run)
    present = [m for m in METRICS if any((m[0], m[1]) in r["scores"] for r in runs)]
    head = ["Method", "Params %", "samples/s", "seeds"] + [m[2] for m in present]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for label, group in by_label.items():
        params = [r["status"]["steps"].get("attach", {}).get("trainable_pct") for r in group]
        speed = [r["status"]["steps"].get("train", {}).get("samples_per_s") for r in group]
        row = [label, _mean_std([p for p in params if p is not None]).split(" +-")[0],
               _mean_std([s for s in speed if s]), str(len(group))]
        row += [_mean_std([r["scores"][(t, k)] for r in group if (t, k) in r["scores"]]) for t, k, _ in present]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


# the paper's orderings between method labels: (a, b, strict)
LABEL_CLAIMS = [("HELLoRA", "HELLoRA (model)", True), ("HELLoRA (model)", "HELLoRA (random)", True),
                ("HELLoRA (random)", "LoRA", True), ("LoRA", "HELLoRA (cold)", True), ("HELLoRA", "LoRA", False),
                ("HELLoRI-D", "LoRI-D", False), ("HELLoRI-S", "LoRI-S", False)]


def seed_key(run: dict) -> tuple:
    """What pairs two runs of different methods: the study's (base seed, fine-tune seed), else the train seed."""
    config = run["config"]
    study = config.get("study") or {}
    if "ft_seed" in study:
        return (study.get("base_seed"), study["ft_seed"])
    return (config.get("train", {}).get("seed", config.get("adapter", {}).get("seed")),)


def stats_table(runs: list[dict]) -> str | None:
    """Markdown: per-method n / mean / std / 95% CI of the first metric present, then each ordering of
    `LABEL_CLAIMS` whose two methods have >= 2 runs with matching seeds (paired bootstrap CI, Wilcoxon p)."""
    from hellora.report.stats import describe, pair_up, paired_test

    metric = next((m for m in METRICS if any((m[0], m[1]) in r["scores"] for r in runs)), None)
    if metric is None:
        return None
    values: dict[str, dict] = defaultdict(dict)
    for run in runs:
        if (metric[0], metric[1]) in run["scores"]:
            values[run["label"]][seed_key(run)] = run["scores"][(metric[0], metric[1])]
    lines = [f"Metric: {metric[2]} (95% CI by Student's t over seeds)", "",
             "| Method | n | mean | std | 95% CI |", "|---|---|---|---|---|"]
    for label, by_seed in values.items():
        d = describe(list(by_seed.values()))
        ci = f"[{d['ci95'][0]:.2f}, {d['ci95'][1]:.2f}]" if d["ci95"] else "-"
        lines.append(f"| {label} | {d['n']} | {d['mean']:.2f} | {d['std']:.2f} | {ci} |")
    claims = []
    for a, b, strict in LABEL_CLAIMS:
        if a in values and b in values:
            keys, x, y = pair_up(values[a], values[b])
            if len(keys) >= 2:
                t = paired_test(x, y, strict=strict)
                claims.append(f"| {a} {'>' if strict else '>='} {b} | {t['n']} | {t['diff']:+.2f} | "
                              f"[{t['ci95'][0]:+.2f}, {t['ci95'][1]:+.2f}] | {t['p']:.4f} | {t['verdict']} |")
    if claims:
        lines += ["", "Paired over matching seeds (difference a - b; paired bootstrap CI; two-sided Wilcoxon "
                      "signed-rank p):", "", "| Claim | pairs | diff | 95% CI | p | verdict |",
                  "|---|---|---|---|---|---|"] + claims
    return "\n".join(lines)


def warmup_table(runs: list[dict]) -> str | None:
    """Table 10: hot-set agreement of each warm-up fraction with the largest one (same model and task)."""
    profiled = [r for r in runs if (r["path"] / "profile.json").is_file()]
    if len({r["config"].get("profile", {}).get("fraction") for r in profiled}) < 2:
        return None
    profiles = {r["config"]["profile"]["fraction"]: (r, ExpertProfile.load(r["path"] / "profile.json"))
                for r in profiled}
    reference = profiles[max(profiles)][1]
    lines = ["| Fraction | Jaccard | Coverage | Warm-up s |", "|---|---|---|---|"]
    for fraction in sorted(profiles):
        run, profile = profiles[fraction]
        agreement = compare_profiles(profile, reference)
        wall = run["status"]["steps"].get("profile", {}).get("wall_time_s")
        lines.append(f"| {100 * fraction:g}% | {agreement['jaccard']:.3f} | {100 * agreement['coverage']:.1f}% | "
                     f"{wall if wall is not None else '-'} |")
    return "\n".join(lines)


def throughput_plot(runs: list[dict], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels, values = [], []
    for run in runs:
        speed = run["status"]["steps"].get("train", {}).get("samples_per_s")
        if speed:
            labels.append(f"{run['label']}\n{run['path'].name}")
            values.append(speed)
    fig, ax = plt.subplots(figsize=(max(4, 1.2 * len(values)), 3.5))
    ax.bar(range(len(values)), values, color="tab:green")
    ax.set_xticks(range(len(values)), labels, fontsize=7)
    ax.set_ylabel("training samples / s")
    fig.tight_layout()
    out = atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png"))
    plt.close(fig)
    return out


def write_report(run_dirs: list[str | Path], out_dir: str | Path) -> Path:
    from hellora.report.heatmap import plot_activation_heatmaps

    runs = []
    for d in run_dirs:
        d = Path(d)
        if not (d / "run.json").is_file():
            raise HelloraError(f"{d}: not a hellora run folder (no run.json)")
        runs.append(load_run(d))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    sections = ["# hellora report", ""]
    groups = defaultdict(list)
    for run in runs:
        groups[run["group"]].append(run)
    for (model, task), group in groups.items():
        sections += [f"## {model} / {task}", "", results_table(group), ""]
        stats = stats_table(group)
        if stats:
            sections += ["### Seed statistics", "", stats, ""]
        table = warmup_table(group)
        if table:
            sections += ["### Warm-up fraction (against the largest)", "", table, ""]
    for run in runs:
        if (run["path"] / "profile.json").is_file():
            profile = ExpertProfile.load(run["path"] / "profile.json")
            placement = HotExpertPlacement.load(run["path"] / "placement.json") \
                if (run["path"] / "placement.json").is_file() else None
            name = f"heatmap_{run['path'].name}.png"
            plot_activation_heatmaps({run["label"]: profile}, out / name,
                                     placements={run["label"]: placement} if placement else None)
            sections.append(f"![{run['label']}]({name})")
    throughput_plot(runs, out / "throughput.png")
    sections += ["", "![throughput](throughput.png)", ""]
    return atomic_write_text(out / "report.md", "\n".join(sections))
