"""The report's throughput figure: one bar per run, coloured by its report row, with the machine's load.

Training throughput depends on what else the machine was doing, so the figure says so: its title gives the highest
1-minute load average recorded at train time and the core count, or "shared machine?" when a run did not record it.
"""

from __future__ import annotations

import os
from pathlib import Path

from hellora.report.runs import Row, load_average
from hellora.utils.io import atomic_write


def load_caption(loads: list[float | None]) -> str:
    """"load <= 1.9 on 2 cores" from the runs' recorded load averages; a caveat when any run lacks one."""
    known = [x for x in loads if x is not None]
    cores = os.cpu_count() or 1
    if not known:
        return "machine load not recorded: on a shared machine these speeds may be low"
    text = f"1-min load average at train time up to {max(known):.1f} (this machine: {cores} cores)"
    if len(known) < len(loads):
        text += "; some runs did not record it"
    return text


def throughput_plot(rows: list[Row], path: Path) -> Path | None:
    """Bar chart of training samples/s per run; None (and no file) when no run recorded a throughput."""
    bars = [(row, run, run.status["steps"].get("train", {}).get("samples_per_s")) for row in rows for run in row.runs]
    bars = [(row, run, speed) for row, run, speed in bars if isinstance(speed, (int, float)) and speed > 0]
    if not bars:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(row.label for row, _, _ in bars))
    cmap = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    colour = {label: cmap(i % cmap.N) for i, label in enumerate(labels)}
    fig, ax = plt.subplots(figsize=(max(5.0, 0.45 * len(bars) + 3.0), 4.5))
    for i, (row, _run, speed) in enumerate(bars):
        ax.bar(i, speed, color=colour[row.label], label=row.label)
    ax.set_xticks(range(len(bars)), [run.path.name for _, run, _ in bars], rotation=90, fontsize=7)
    ax.set_xlabel("run folder")
    ax.set_ylabel("training samples / s")
    ax.set_title(load_caption([load_average(run) for _, run, _ in bars]), fontsize=8)
    handles, names = ax.get_legend_handles_labels()
    unique = dict(zip(names, handles))
    ax.legend(unique.values(), unique.keys(), fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0),
              title="report row", title_fontsize=7)
    fig.tight_layout()
    out = atomic_write(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png", bbox_inches="tight"))
    plt.close(fig)
    return out
