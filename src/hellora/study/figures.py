"""The study's PNG figures (small: 100 dpi, a few hundred KB at most).

    accuracy_vs_params.png   test exact match (mean, 95% CI) against trainable parameters, one panel per target
    routing_entropy.png      per-layer routing entropy of the target's tokens before / after fine-tuning
    forgetting.png           other skills' exact match before / after fine-tuning, per arm
    heatmap_{target}.png     per-skill routing of base 0 with the target's layer-hot experts boxed
"""

from __future__ import annotations

import math
from pathlib import Path

from hellora.study.paths import base_folder
from hellora.utils.io import atomic_write

_MAIN = ["lora", "hellora", "model-hot", "random", "cold", "fft", "lora-pure", "hellora-pure"]


def _save(fig, path: Path) -> str:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
    return path.name


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def accuracy_vs_params(study: dict, path: Path) -> str:
    plt = _plt()
    targets = list(study["targets"])
    fig, axes = plt.subplots(1, len(targets), figsize=(5.5 * len(targets), 4.2), squeeze=False)
    for ax, target in zip(axes[0], targets):
        for arm, row in study["targets"][target]["arms"].items():
            if row["mean"] is None or not row["trainable"]:
                continue
            lo, hi = row["ci95"] or [row["mean"], row["mean"]]
            ax.errorbar(row["trainable"], row["mean"], yerr=[[row["mean"] - lo], [hi - row["mean"]]], fmt="o",
                        capsize=3, ms=4)
            ax.annotate(arm, (row["trainable"], row["mean"]), fontsize=6, xytext=(3, 2), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("trainable parameters")
        ax.set_ylabel("test exact match (%)")
        ax.set_title(f"target '{target}' (mean, 95% CI)")
        ax.grid(alpha=0.3)
    return _save(fig, path)


def routing_entropy(study: dict, path: Path, experts: int) -> str:
    plt = _plt()
    targets = list(study["targets"])
    fig, axes = plt.subplots(1, len(targets), figsize=(5.5 * len(targets), 3.8), squeeze=False)
    for ax, target in zip(axes[0], targets):
        arms = study["targets"][target]["arms"]
        first = next((r for r in arms.values() if r["entropy_before"]), None)
        if first:
            ax.plot(first["entropy_before"], "k--", lw=2, label="before (base)")
        for arm in _MAIN:
            if arm in arms and arms[arm]["entropy_after"]:
                ax.plot(arms[arm]["entropy_after"], marker="o", ms=3, label=f"after {arm}")
        ax.axhline(math.log(experts), color="grey", lw=0.8, ls=":", label="uniform (log E)")
        ax.set_xlabel("MoE layer")
        ax.set_ylabel("routing entropy of target tokens (nats)")
        ax.set_title(f"target '{target}'")
        ax.legend(fontsize=6)
    return _save(fig, path)


def forgetting(study: dict, path: Path) -> str:
    plt = _plt()
    targets = list(study["targets"])
    fig, axes = plt.subplots(1, len(targets), figsize=(6 * len(targets), 3.8), squeeze=False)
    for ax, target in zip(axes[0], targets):
        arms = study["targets"][target]["arms"]
        names = [a for a in arms if arms[a]["others_after"]["mean"] is not None]
        after = [arms[a]["others_after"]["mean"] for a in names]
        err = [(arms[a]["others_after"]["ci95"] or [v, v])[1] - v for a, v in zip(names, after)]
        before = study["targets"][target]["base"]["others"]["mean"]
        ax.bar(range(len(names)), after, yerr=err, capsize=2, color="tab:orange")
        if before is not None:
            ax.axhline(before, color="k", ls="--", lw=1, label="base (before)")
        ax.set_xticks(range(len(names)), names, rotation=60, fontsize=7, ha="right")
        ax.set_ylabel("other skills' exact match (%)")
        ax.set_title(f"after fine-tuning on '{target}'")
        ax.legend(fontsize=7)
    return _save(fig, path)


def heatmaps(study: dict, out: Path, folder: Path) -> list[str]:
    from hellora.profiling.profile import ExpertProfile
    from hellora.report.heatmap import plot_activation_heatmaps

    cfg = study["config"]
    base = cfg["base_seeds"][0]
    profiles_dir = base_folder(out, base) / "profiles"
    names = []
    for target in study["targets"]:
        skills = [s for s in cfg["skills"] + [target] if (profiles_dir / f"{s}.json").is_file()]
        if target not in skills:
            continue
        profiles = {s: ExpertProfile.load(profiles_dir / f"{s}.json") for s in skills}
        placement = profiles[target].select("layer", cfg["top_k"])
        path = folder / f"heatmap_{target}.png"
        plot_activation_heatmaps(profiles, path, placements={target: placement},
                                 title=f"routing per skill on base {base}; boxes: layer-hot experts of '{target}'")
        names.append(path.name)
    return names


def write_figures(study: dict, out: Path, folder: Path | None = None) -> list[str]:
    folder = Path(folder or out / "figures")
    folder.mkdir(parents=True, exist_ok=True)
    names = [accuracy_vs_params(study, folder / "accuracy_vs_params.png"),
             routing_entropy(study, folder / "routing_entropy.png", study["config"]["experts"]),
             forgetting(study, folder / "forgetting.png")]
    return names + heatmaps(study, out, folder)
