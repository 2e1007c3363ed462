"""`hellora params` reproduces the paper's Params column offline, through the real console script."""

import json
import shutil
import subprocess
import sys

import pytest

PAPER = [  # model, method, k, paper's trainable %
    ("olmoe-1b-7b", "lora", 8, 4.30), ("olmoe-1b-7b", "hellora", 8, 0.678),
    ("mixtral-8x7b", "lora", 2, 1.03), ("mixtral-8x7b", "hellora", 2, 0.31),
    ("deepseek-moe-16b", "lora", 12, 3.545), ("deepseek-moe-16b", "hellora", 12, 0.823),
]


def _hellora(*args):
    exe = shutil.which("hellora")
    cmd = [exe] if exe else [sys.executable, "-m", "hellora.cli"]
    return subprocess.run(cmd + list(args), capture_output=True, text=True, env={"HF_HUB_OFFLINE": "1", "PATH": ""})


@pytest.mark.parametrize("model, method, k, paper", PAPER)
def test_params_match_the_paper(model, method, k, paper):
    k_flag = ["--k", str(k)] if method == "hellora" else []  # --k is refused for methods that adapt every expert
    done = _hellora("params", "--model", model, "--method", method, *k_flag, "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert abs(report["trainable_pct"] - paper) <= 0.01
    assert report["trainable_pct"] == pytest.approx(100 * report["trainable"] / report["total"], abs=1e-4)


def test_params_errors_are_one_line_without_traceback():
    done = _hellora("params", "--model", "olmoe-1b-7b", "--method", "hellora", "--k", "65")
    assert done.returncode == 2
    assert "k: number of hot experts" in done.stderr and "Traceback" not in done.stderr


def test_targets_flag_and_its_deprecated_old_name_placement(capsys):
    from hellora.cli import main

    def run(*flags):
        assert main(["params", "--model", "olmoe-1b-7b", "--method", "hellora", "--k", "8", "--json", *flags]) == 0
        out, err = capsys.readouterr()
        return json.loads(out), err

    new, err = run("--targets", "pure")
    assert new["targets"] == "pure" and "deprecated" not in err
    old, err = run("--placement", "pure")  # users' scripts: still accepted, with one line on stderr
    assert old == new and err.strip() == "hellora: --placement is deprecated; use --targets"
    default, _ = run()
    assert default["targets"] == "all" and default["trainable"] > new["trainable"]
