"""recipes/cpu/run.sh runs the README's CPU block line for line, and passes its flags (--overwrite) to every command.

A stand-in `hellora` on PATH records each call, so the script's own logic is tested in a second, without training.
"""

import os
import re
import shlex
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def readme_cpu_block() -> list[list[str]]:
    text = (REPO / "README.md").read_text()
    block = next(b for b in re.findall(r"^```bash\n(.*?)^```", text, flags=re.S | re.M)
                 if "recipes/cpu/sort-hellora.yaml" in b)
    return [shlex.split(line, comments=True) for line in block.splitlines() if line.strip()]


def _run(tmp_path: Path, *flags: str) -> list[list[str]]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "calls.txt"
    fake = bin_dir / "hellora"
    fake.write_text(f"#!/usr/bin/env bash\nprintf '%q ' hellora \"$@\" >> {shlex.quote(str(log))}\n"
                    f"echo >> {shlex.quote(str(log))}\n")
    fake.chmod(0o755)
    (tmp_path / "hellora-demo" / "base-model").mkdir(parents=True, exist_ok=True)
    log.unlink(missing_ok=True)
    done = subprocess.run(["bash", str(REPO / "recipes" / "cpu" / "run.sh"), *flags], cwd=tmp_path,
                          env={**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [shlex.split(line) for line in log.read_text().splitlines() if line.strip()]


def test_run_sh_runs_the_readme_block(tmp_path):
    assert _run(tmp_path) == readme_cpu_block()


def test_run_sh_passes_overwrite_to_every_command(tmp_path):
    calls = _run(tmp_path, "--overwrite")
    assert [c[:-1] for c in calls] == readme_cpu_block() and all(c[-1] == "--overwrite" for c in calls)
