"""Every Python snippet in README.md runs as written, on the demo's folder layout (a small stand-in of
`hellora-demo/` built by `tests/cli/conftest.py`'s `demo_home`), each in a fresh process and folder; the own-loop
snippet's adapter then goes through `hellora eval --adapter` and `hellora export` as the README says, without --model.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import demo_home  # noqa: F401  (the fixture)

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"


def python_snippets(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def _env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO / "src"), "HF_HUB_OFFLINE": "1", "CUDA_VISIBLE_DEVICES": "",
            "OMP_NUM_THREADS": "1", "TRANSFORMERS_VERBOSITY": "error"}


def _folder(tmp_path: Path, home: Path, name: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "hellora-demo").symlink_to(home / "hellora-demo")
    return folder


def test_the_readme_has_the_snippets_this_test_expects():
    snippets = python_snippets(README.read_text())
    assert len(snippets) >= 2 and any("save_adapter(model, \"adapter/\", base_model=base)" in s for s in snippets)


@pytest.mark.parametrize("index", range(len(python_snippets(README.read_text()))))
def test_readme_python_snippet_runs_as_written(index, demo_home, tmp_path):  # noqa: F811
    snippet = python_snippets(README.read_text())[index]
    folder = _folder(tmp_path, demo_home, f"snippet{index}")
    done = subprocess.run([sys.executable, "-c", snippet], cwd=folder, env=_env(), capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    if "save_adapter(" not in snippet:
        return
    hellora = [sys.executable, "-m", "hellora.cli"]
    evaluated = subprocess.run([*hellora, "eval", "--task", "skill", "--adapter", "adapter", "--data",
                                "hellora-demo/data/sort-test.jsonl", "--out", "eval-own", "--no-progress"],
                               cwd=folder, env=_env(), capture_output=True, text=True, timeout=600)
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    assert (folder / "eval-own" / "eval_skill.json").is_file()
    exported = subprocess.run([*hellora, "export", "--adapter", "adapter", "--format", "peft", "--out", "peft-own"],
                              cwd=folder, env=_env(), capture_output=True, text=True, timeout=600)
    assert exported.returncode == 0, exported.stderr[-3000:]
    assert (folder / "peft-own" / "adapter_config.json").is_file()
