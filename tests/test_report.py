"""`hellora report` from real run folders: method rows, seeds merged, warm-up table, figures."""

from hellora.cli import main
from hellora.report.tables import method_label


def test_method_labels():
    assert method_label({"method": "hellora"}, {"strategy": "layer"}) == "HELLoRA"
    assert method_label({"method": "hellora", "variant": "lori_s"}, {}) == "HELLoRI-S"
    assert method_label({"method": "lora", "variant": "dora"}, {}) == "DoRA"
    assert method_label({"method": "hellora", "placement": "pure"}, {"strategy": "model", "k": 4}) == \
        "HELLoRA (model) k=4 [pure]"
    assert method_label({"method": "fft"}, {}) == "FFT"
    assert method_label({"method": "hellora"}, {"k": 8}, {"mode": "forward", "fraction": 0.1}) == \
        "HELLoRA k=8 (forward profile)"


def test_report_from_runs(write_recipe, tmp_path, capsys):
    runs = []
    for name, overrides in [("h1", ["train.seed=1"]), ("h2", ["train.seed=2"]), ("l", ["adapter.method=lora"]),
                            ("f", ["profile.fraction=0.67"])]:
        assert main(["train", str(write_recipe(f"{name}.yaml", out=name)), *overrides, "--no-progress"]) == 0
        runs.append(str(tmp_path / name))
    capsys.readouterr()
    assert main(["report", *runs, "--out", str(tmp_path / "rep"), "--quiet"]) == 0
    text = (tmp_path / "rep" / "report.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith("| HELLoRA") or line.startswith("| LoRA")]
    assert any(line.startswith("| HELLoRA p=34% | ") and "| 2 |" in line for line in rows)  # seeds 1, 2 merged
    assert any(line.startswith("| HELLoRA p=67% | ") and "| 1 |" in line for line in rows)  # other fraction apart
    assert any(line.startswith("| LoRA | ") for line in rows)
    assert "Warm-up fraction" in text and "| 34% |" in text and "| 67% |" in text
    assert (tmp_path / "rep" / "throughput.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "rep" / "heatmap_h1.png").is_file()
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "x")]) == 2
