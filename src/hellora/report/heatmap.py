"""Per-layer expert activation heatmaps with hot experts marked (the paper's Figures 1, 5, 6, 7).

Reads only a saved profile (and optionally a placement): rows are MoE layers, columns experts, colour the share of
the layer's top-k assignments each expert received; hot experts (those the placement adapts) get a lime box, named
in each panel's legend.
"""

from __future__ import annotations

from pathlib import Path

from hellora.placement import HotExpertPlacement
from hellora.profiling.profile import ExpertProfile
from hellora.utils.io import atomic_write


def plot_activation_heatmaps(profiles: dict[str, ExpertProfile], path: str | Path,
                             placements: dict[str, HotExpertPlacement] | None = None, title: str | None = None) -> Path:
    """One panel per profile (e.g. per task); saves a PNG atomically and returns its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    names = list(profiles)
    fig, axes = plt.subplots(1, len(names), figsize=(max(4.0, 0.22 * profiles[names[0]].num_experts + 2) * len(names),
                                                     0.45 * len(profiles[names[0]].layers) + 2.0), squeeze=False)
    for ax, name in zip(axes[0], names):
        profile = profiles[name]
        shares = profile.shares_by_layer()
        grid = [shares[layer] for layer in profile.layers]
        image = ax.imshow(grid, aspect="auto", cmap="viridis", interpolation="nearest")
        ax.set_yticks(range(len(profile.layers)), [str(l) for l in profile.layers])
        ax.set_xlabel("expert")
        ax.set_ylabel("layer")
        ax.set_title(name)
        hot = (placements or {}).get(name)
        if hot is not None:
            for row, layer in enumerate(profile.layers):
                for e in hot.experts.get(layer, []):
                    ax.add_patch(Rectangle((e - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="lime", linewidth=1.5))
            box = Rectangle((0, 0), 1, 1, fill=False, edgecolor="lime", linewidth=1.5)
            ax.legend([box], [f"hot expert ({hot.strategy}, adapted)"], loc="upper center",
                      bbox_to_anchor=(0.5, -0.12 - 0.6 / max(1, len(profile.layers))), fontsize=7, frameon=False)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of assignments")
    if title:
        fig.suptitle(title)
    fig.tight_layout()

    def write(tmp: str) -> None:
        fig.savefig(tmp, dpi=120, format="png")

    out = atomic_write(path, write)
    plt.close(fig)
    return out
