"""`hellora report` tells the truth: unlike configs are never pooled, unfinished runs are left out with a non-zero
exit, degenerate runs are flagged, no std from one seed, no empty plot, throughput carries the machine's load."""

import json

import yaml

from hellora.cli import main
from hellora.report.runs import load_run, pool_rows
from hellora.report.tables import make_report


def make_run(root, name, *, steps=40, seed=0, lr=0.002, method="hellora", status="finished", score=0.5,
             speed=10.0, load=None, completed=None, reason=None):
    """A run folder as `hellora train` writes it (config.yaml, run.json, eval/eval_skill.json), without training."""
    run = root / name
    (run / "eval").mkdir(parents=True)
    config = {"model": {"name": "tiny"}, "data": {"task": "sort"}, "adapter": {"method": method, "r": 4},
              "selection": {"strategy": "layer", "seed": seed}, "profile": {"mode": "warmup", "fraction": 0.1},
              "train": {"max_steps": steps, "learning_rate": lr, "seed": seed, "logging_steps": 1},
              "output_dir": str(run)}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    train = {"steps": steps, "final_loss": 1.0, "samples_per_s": speed}
    if load is not None:
        train["load_avg_1m"] = load
    record = {"status": status, "steps": {"attach": {"trainable_pct": 1.5}, "train": train}}
    if completed is not None:
        record["completed"] = completed
    if reason:
        record["reason"] = reason
    (run / "run.json").write_text(json.dumps(record))
    if score is not None:
        (run / "eval" / "eval_skill.json").write_text(json.dumps({"task": "skill", "scores": {"accuracy": score},
                                                                  "headline": {"accuracy": score}}))
    return run


def _rows(text):
    return [line for line in text.splitlines() if line.startswith("| HELLoRA") or line.startswith("| LoRA")]


def test_runs_that_differ_in_more_than_the_seed_are_split_and_the_difference_named(tmp_path, capsys):
    runs = [make_run(tmp_path, "a", steps=40, seed=1, score=0.9), make_run(tmp_path, "b", steps=40, seed=2, score=0.7),
            make_run(tmp_path, "c", steps=200, seed=1, score=0.2)]
    assert main(["report", *map(str, runs), "--out", str(tmp_path / "rep")]) == 0
    text = (tmp_path / "rep" / "report.md").read_text()
    rows = _rows(text)
    forty = [r for r in rows if "train.max_steps=40" in r]
    two_hundred = [r for r in rows if "train.max_steps=200" in r]
    assert len(forty) == 2 and len(two_hundred) == 2  # results table and seed statistics, one row per config
    assert "| 80.00 +- 14.14 |" in forty[0] and "| 2 |" in forty[0]  # seeds 1 and 2 pooled
    assert "| 20.00 |" in two_hundred[0] and "+-" not in two_hundred[0]  # n = 1: a value, no std
    assert "not pooled" in text and "train.max_steps 40/200" in text
    assert "not pooled" in capsys.readouterr().err  # and said on stderr too


def test_seed_fields_and_bookkeeping_do_not_split(tmp_path):
    runs = [load_run(make_run(tmp_path, f"r{s}", seed=s)) for s in range(3)]
    rows, notes = pool_rows(runs)
    assert len(rows) == 1 and len(rows[0].runs) == 3 and not notes
    other_lr = load_run(make_run(tmp_path, "x", lr=0.01))
    rows, notes = pool_rows(runs + [other_lr])
    assert len(rows) == 2 and "train.learning_rate" in notes[0]


def test_single_seed_has_no_std_in_the_statistics(tmp_path):
    run = make_run(tmp_path, "one", score=0.4)
    report = make_report([run], tmp_path / "rep")
    stats_rows = [line for line in report.path.read_text().splitlines() if line.startswith("| HELLoRA | 1 |")]
    assert stats_rows == ["| HELLoRA | 1 | 40.00 | - | - |"]


def test_an_interrupted_run_is_left_out_with_a_warning_and_a_non_zero_exit(tmp_path, capsys):
    done = make_run(tmp_path, "done", score=0.5)
    cut = make_run(tmp_path, "cut", status="interrupted", score=None, speed=None, reason="Ctrl-C")
    assert main(["report", str(done), str(cut), "--out", str(tmp_path / "rep"), "--quiet"]) == 3
    err = capsys.readouterr().err
    assert "cut: status interrupted (Ctrl-C); left out" in err and "exit status 3" in err
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "Left out" in text and len([r for r in _rows(text) if r.startswith("| HELLoRA |")]) == 2
    assert main(["report", str(done), str(cut), "--out", str(tmp_path / "rep2"), "--include-unfinished"]) == 0
    assert "| HELLoRA [interrupted] |" in (tmp_path / "rep2" / "report.md").read_text()


def test_only_unfinished_runs_is_an_error_and_writes_nothing(tmp_path, capsys):
    cut = make_run(tmp_path, "cut", status="running", score=None, speed=None)
    assert main(["report", str(cut), "--out", str(tmp_path / "rep")]) == 2
    assert "no finished run to report" in capsys.readouterr().err
    assert not (tmp_path / "rep").exists()


def test_degenerate_runs_are_flagged_and_kept_apart(tmp_path, capsys):
    good = make_run(tmp_path, "good", seed=1, score=0.8)
    bad = make_run(tmp_path, "bad", seed=2, score=0.1, status="degenerate", completed=True,
                   reason="the gradient norm was 0 for the last 10 of 12 steps")
    assert main(["report", str(good), str(bad), "--out", str(tmp_path / "rep"), "--quiet"]) == 0
    text = (tmp_path / "rep" / "report.md").read_text()
    assert "Flagged" in text and "bad: degenerate: the gradient norm was 0" in text
    rows = _rows(text)
    assert any(r.startswith("| HELLoRA | ") and "| 80.00 |" in r for r in rows)
    assert any(r.startswith("| HELLoRA [degenerate] | ") and "| 10.00 |" in r for r in rows)
    assert "degenerate" in capsys.readouterr().err


def test_no_throughput_means_no_plot_and_load_is_shown(tmp_path):
    quiet = make_run(tmp_path, "q", speed=None)
    report = make_report([quiet], tmp_path / "rep")
    assert not (tmp_path / "rep" / "throughput.png").exists()
    assert "no throughput figure" in report.path.read_text()
    loaded = make_run(tmp_path, "l", speed=12.0, load=3.5)
    text = make_report([loaded], tmp_path / "rep2").path.read_text()
    assert (tmp_path / "rep2" / "throughput.png").read_bytes()[:4] == b"\x89PNG"
    assert "| 12.00 | 3.5 |" in text and "load average" in text
    assert "| ? |" in make_report([make_run(tmp_path, "u", speed=5.0)], tmp_path / "rep3").path.read_text()


def test_eight_runs_get_a_legend_and_labels_that_do_not_overlap(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from hellora.report.figures import throughput_plot

    runs = [load_run(make_run(tmp_path, f"run-with-a-long-name-{i}", seed=i, lr=0.001 * (1 + i % 2),
                              method="lora" if i % 4 == 0 else "hellora")) for i in range(8)]
    rows, _ = pool_rows(runs)
    saved = []
    original = plt.Figure.savefig

    def keep(fig, *args, **kwargs):
        saved.append(fig)
        return original(fig, *args, **kwargs)

    plt.Figure.savefig = keep
    try:
        assert throughput_plot(rows, tmp_path / "t.png") is not None
    finally:
        plt.Figure.savefig = original
    ax = saved[0].axes[0]
    legend = ax.get_legend()
    assert legend is not None and len(legend.get_texts()) == len(rows)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(saved[0])  # the figure was closed after saving: lay it out again
    canvas.draw()
    renderer = canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in ax.get_xticklabels()]
    assert len(boxes) == 8
    assert not any(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])
    assert "machine load not recorded" in ax.get_title()


def test_the_legend_explains_the_labels(tmp_path):
    text = make_report([make_run(tmp_path, "a")], tmp_path / "rep").path.read_text()
    assert "`p=X%` means the LoRA warm-up" in text


def _study_run(root, name, method, base, seed, score):
    run = make_run(root, name, method=method, seed=seed, score=score)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["study"] = {"arm": method, "target": "sort", "base_seed": base, "ft_seed": seed}
    config["selection"]["seed"] = 1000 * base + seed
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    return run


def test_runs_with_bases_use_the_base_as_the_unit(tmp_path):
    hellora = {0: (0.5, 0.7), 1: (0.8, 0.8), 2: (0.4, 0.6)}  # base means 60, 80, 50
    lora = {0: (0.5, 0.5), 1: (0.7, 0.7), 2: (0.4, 0.4)}     # base means 50, 70, 40: every base 10 below
    runs = [_study_run(tmp_path, f"{m}-b{b}-s{s}", m, b, s, scores[b][s])
            for m, scores in (("hellora", hellora), ("lora", lora)) for b in range(3) for s in range(2)]
    text = make_report(runs, tmp_path / "rep").path.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| HELLoRA | 3 | 6 |"))
    assert "| 63.33 | 15.28 |" in row and "0: 60.00, 1: 80.00, 2: 50.00" in row  # mean and std of base means
    lo, hi = (float(x) for x in row.split("| [")[1].split("]")[0].split(", "))
    half = 4.303 * 15.275 / 3 ** 0.5  # t(0.975, df 2) * std / sqrt(bases)
    assert abs(lo - (63.333 - half)) < 0.02 and abs(hi - (63.333 + half)) < 0.02
    contrast = next(line for line in text.splitlines() if line.startswith("| HELLoRA >= LoRA |"))
    assert "| 3 | +10.00 | [+10.00, +10.00] |" in contrast and "| 0.2500 |" in contrast  # 2 of 8 sign patterns
    # two bases: no pooled CI
    few = make_report([r for r in runs if "-b2-" not in r.name], tmp_path / "rep2").path.read_text()
    row = next(line for line in few.splitlines() if line.startswith("| HELLoRA | 2 | 4 |"))
    assert "| 70.00 | 14.14 | - |" in row
