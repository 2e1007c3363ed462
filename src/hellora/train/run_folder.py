"""The run folder of `hellora train`: who may write it, whether it can be resumed, and its run.json.

    runs/x/                 one run; its lock is the sibling file runs/.x.lock (`hellora.utils.io.folder_lock`)
    runs/x/config.yaml      the resolved config; a rerun with the same config resumes, another config is refused
    runs/x/run.json         status, versions, device, processes, seed, each pipeline step's timing and results

The pipeline (`hellora.train.pipeline`) decides what to compute; this module only guards and records the folder.
"""

from __future__ import annotations

import os
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Iterator

import yaml

from hellora.config import RunConfig, dump_config
from hellora.utils.errors import HelloraError
from hellora.utils.io import atomic_write_json, folder_lock, read_json
from hellora.utils.meta import run_metadata


@contextmanager
def hold_run_folder(output_dir: str | Path) -> Iterator[None]:
    """Hold `output_dir`'s lock while the body runs: the first process (RANK 0, or the only one) takes it, so a
    second launch into the same folder is refused instead of interleaving; other ranks of one launch do not."""
    with nullcontext() if int(os.environ.get("RANK", "0")) != 0 else folder_lock(output_dir):
        yield


def run_finished(run: str | Path) -> bool:
    """Whether `run` holds a run whose run.json says it finished."""
    status = Path(run) / "run.json"
    return status.is_file() and read_json(status, "run status").get("status") == "finished"


def _reresolved(saved: Path) -> str | None:
    """A saved config.yaml as this version resolves it: fields added since it was written take their defaults,
    so an unfinished run from an older hellora still resumes when nothing it set has changed."""
    from hellora.config import load_run_config

    try:
        return dump_config(load_run_config(saved).resolved())
    except HelloraError:
        return None


def check_run_folder(run: Path, config_text: str) -> bool:
    """True when `run` holds an unfinished run of the same config (resume); raises for anything else there."""
    if run_finished(run):
        raise HelloraError(f"{run} already holds a finished run; choose another output_dir (nothing was changed)")
    saved = run / "config.yaml"
    if saved.is_file():
        text = saved.read_text()
        current = _reresolved(saved) if text != config_text else text  # re-parsed only when the text differs
        if current != config_text:
            old, new = yaml.safe_load(current or text), yaml.safe_load(config_text)
            diff = next((f"{s}.{k}" for s in new for k in (new[s] or {}) if isinstance(new[s], dict)
                         and (old.get(s) or {}).get(k) != new[s][k]), "output_dir")
            raise HelloraError(f"{run} holds a run with another config (first difference: {diff}); "
                               f"choose another output_dir (nothing was changed)")
        return True
    if run.is_dir() and any(run.iterdir()):
        raise HelloraError(f"{run} is not empty and holds no hellora run; choose another output_dir")
    return False


class RunRecorder:
    """run.json: written atomically after every step, by the main process only."""

    def __init__(self, run: Path, config: RunConfig, accelerator) -> None:
        self.path = run / "run.json"
        self.main = accelerator.is_main_process
        previous = read_json(self.path, "run status") if self.path.is_file() else {}
        self.data = {"status": "running", "method": config.adapter.method, "processes": accelerator.num_processes,
                     "meta": run_metadata(config.train.seed), "steps": previous.get("steps", {})}

    def step(self, name: str, **values) -> None:
        self.data["steps"][name] = values
        self.save()

    def save(self) -> None:
        if self.main:
            atomic_write_json(self.path, self.data)
