"""The study's PNG figures (small: 100 dpi, a few hundred KB at most), drawn from study.json alone.

    frontier.png     per target, each arm's path of (target test accuracy, other skills' accuracy) over the
                     checkpoints (step 0 = the base), one line per learning rate, averaged over the kept bases;
                     the dotted line marks the pre-registered iso-target level
    per_base.png     per target, each arm's test exact match per base at the cross-fitted lr (dots) and the mean
"""

from __future__ import annotations

import functools
from pathlib import Path

from hellora.utils.io import atomic_write

_COLOURS = ["tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange", "tab:brown", "tab:pink", "tab:gray",
            "tab:olive", "tab:cyan"]


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


MAX_PNG_BYTES = 300_000  # a figure committed beside a results page stays small
DPIS = (100, 80, 64)      # tried in turn: a figure with many arms and learning rates is drawn coarser to fit


def _write_png(fig, dpi: int, tmp: Path) -> None:
    fig.savefig(tmp, dpi=dpi, format="png", pil_kwargs={"optimize": True})


def _save(fig, path: Path) -> str:
    """`fig` as PNG at the highest of `DPIS` that fits `MAX_PNG_BYTES` (the last one whatever its size: the
    page generator refuses a figure that is still too big)."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    for dpi in DPIS:
        atomic_write(path, functools.partial(_write_png, fig, dpi))
        if path.stat().st_size <= MAX_PNG_BYTES:
            break
    plt.close(fig)
    return path.name


def frontier_figure(study: dict, path: Path) -> str:
    plt = _plt()
    targets = list(study["targets"])
    fig, axes = plt.subplots(1, len(targets), figsize=(6.5 * len(targets), 4.5), squeeze=False)
    for ax, target in zip(axes[0], targets):
        for i, (arm, block) in enumerate(study["targets"][target]["arms"].items()):
            colour = _COLOURS[i % len(_COLOURS)]
            for j, (_lr, points) in enumerate(block["frontier"].items()):
                ax.plot([p[1] for p in points], [p[2] for p in points], marker=".", color=colour, lw=1,
                        alpha=0.45 + 0.5 * j / max(1, len(block["frontier"]) - 1), label=arm if j == 0 else None)
        ax.axvline(study["design"]["iso_target"], color="k", ls=":", lw=1)
        ax.set_xlabel(f"'{target}' test exact match (%)")
        ax.set_ylabel("other skills' exact match (%)")
        ax.set_title(f"'{target}': checkpoints per lr (darker: higher lr), mean over bases", fontsize=9)
        ax.legend(fontsize=7)
    return _save(fig, path)


def per_base_figure(study: dict, path: Path) -> str:
    plt = _plt()
    targets = list(study["targets"])
    fig, axes = plt.subplots(1, len(targets), figsize=(6 * len(targets), 3.8), squeeze=False)
    for ax, target in zip(axes[0], targets):
        arms = study["targets"][target]["arms"]
        for x, (_arm, block) in enumerate(arms.items()):
            values = list(block["test"]["per_base"].values())
            ax.scatter([x] * len(values), values, s=12, color="tab:blue", alpha=0.7)
            if block["test"]["mean"] is not None:
                ax.plot([x - 0.3, x + 0.3], [block["test"]["mean"]] * 2, color="k", lw=2)
        ax.set_xticks(range(len(arms)), list(arms), rotation=45, fontsize=7, ha="right")
        ax.set_ylabel("test exact match (%), cross-fitted lr")
        ax.set_title(f"'{target}': one dot per base", fontsize=9)
    return _save(fig, path)


def write_figures(study: dict, folder: Path) -> list[str]:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [frontier_figure(study, folder / "frontier.png"), per_base_figure(study, folder / "per_base.png")]
