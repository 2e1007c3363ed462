"""`hellora train` with selection.strategy retention: the run selects against its reference profile, and a
missing or mismatched reference is refused before the run folder is made."""

import json

from hellora.cli import main
from hellora.placement import HotExpertPlacement, retention_topk
from hellora.profiling import ExpertProfile


def test_a_retention_run_selects_against_its_reference(write_recipe, tmp_path, capsys):
    recipe = write_recipe()
    reference = tmp_path / "others.json"
    assert main(["profile", str(recipe), "profile.fraction=0.5", "--out", str(reference), "--no-progress"]) == 0
    assert main(["train", str(recipe), "selection.strategy=retention", f"selection.reference={reference}",
                 "--no-progress"]) == 0
    run = tmp_path / "run"
    profile, ref = ExpertProfile.load(run / "profile.json"), ExpertProfile.load(reference)
    placement = HotExpertPlacement.load(run / "placement.json")
    assert placement.strategy == "retention" and placement.source["reference"]["fraction"] == 0.5
    assert placement.experts == retention_topk(profile.counts_by_layer(), ref.counts_by_layer(), placement.k)
    assert json.loads((run / "run.json").read_text())["status"] == "finished"

    capsys.readouterr()
    assert main(["train", str(write_recipe(out="no-ref")), "selection.strategy=retention", "--no-progress"]) != 0
    assert "selection.reference" in capsys.readouterr().err and not (tmp_path / "no-ref").exists()

    wrong = ExpertProfile(layers=ref.layers, counts=[row + [0] for row in ref.counts], mass=[], tokens=[],
                          num_experts=ref.num_experts + 1, top_k=ref.top_k)
    wrong.save(tmp_path / "wrong.json")
    assert main(["train", str(write_recipe(out="bad-ref")), "selection.strategy=retention",
                 f"selection.reference={tmp_path / 'wrong.json'}", "--no-progress"]) != 0
    err = capsys.readouterr().err.strip()  # transformers' weight-loading bar may come first
    last = err.splitlines()[-1]
    assert "Traceback" not in err and last.startswith("hellora train: error: selection.reference"), err
    assert "wrong.json" in last and "9 experts" in last
    assert not (tmp_path / "bad-ref").exists()
