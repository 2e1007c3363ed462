"""`hellora eval` without --out writes where its help and the README say: eval-NAME for a model folder NAME, eval/
beside an adapter folder; and it says that this was the default."""

import os

from hellora.cli import main
from hellora.cli.evaluate import default_eval_out


def test_default_eval_out_names():
    assert default_eval_out("hellora-demo/base-model", None) == "eval-base-model"
    assert default_eval_out("runs/cpu/merged/", None) == "eval-merged"
    assert default_eval_out("x", "runs/a/adapter") == os.path.abspath("runs/a/eval")


def test_eval_without_out_writes_eval_name_and_says_so(demo_home, tmp_path, monkeypatch, capsys):
    (tmp_path / "hellora-demo").symlink_to(demo_home / "hellora-demo")
    monkeypatch.chdir(tmp_path)
    assert main(["eval", "--task", "skill", "--model", "hellora-demo/base-model", "--data",
                 "hellora-demo/data/sort-test.jsonl", "--limit", "2", "--no-progress"]) == 0
    assert (tmp_path / "eval-base-model" / "eval_skill.json").is_file()
    assert not (tmp_path / "eval").exists()
    assert "eval-base-model/eval_skill.json, the default --out" in capsys.readouterr().out
