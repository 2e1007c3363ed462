"""The run folder of `hellora train`: who may write it, whether it can be resumed, and its run.json.

    runs/x/                 one run; its lock is runs/.x.lock beside the folder's real path (`folder_lock`)
    runs/x/config.yaml      the resolved config; a rerun with the same config resumes, another config is refused
    runs/x/run.json         status, versions, device, processes, seed, each pipeline step's timing and results;
                            its `format` and `run_id` mark the folder as hellora's (only such a folder is replaced
                            by --overwrite, `hellora.utils.ownership`)

run.json's `status` is `running` while a process works on the run (its `pid` names it), `finished` at the end, and
otherwise says how the last attempt ended: `diverged` (a NaN/inf loss, gradient or parameter), `interrupted`
(Ctrl-C or SIGTERM) or `failed` (anything else), with the reason, the training step reached and the checkpoint a
rerun resumes from. Rerunning the same command resumes; a different config is refused, except the fields of
`RESTARTABLE`, which `--restart-from-checkpoint` lets change (each change is recorded in run.json's
`config_changes`). The pipeline (`hellora.train.pipeline`) decides what to compute; this module guards and records
the folder.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import threading
import time
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Iterator

import yaml

from hellora.config import RunConfig, dump_config, load_run_config
from hellora.loop.checkpoint import list_checkpoints
from hellora.loop.training import TrainingDiverged
from hellora.utils.errors import HelloraError
from hellora.utils.io import atomic_write_json, folder_lock, read_json
from hellora.utils.meta import run_metadata
from hellora.utils.ownership import RUN_FORMAT, new_run_id

log = logging.getLogger(__name__)

RESTARTABLE = ("train.learning_rate", "train.max_grad_norm", "train.warmup_ratio")
_RECORDERS: dict[str, "RunRecorder"] = {}  # real path of a run folder -> the recorder writing its run.json
_RESUME = "then rerun the same command to resume (what was written before is kept)"
_WRITE_ERRORS = {errno.ENOSPC: f"free some space, {_RESUME}", errno.EDQUOT: f"free some space, {_RESUME}",
                 errno.EROFS: "choose an output_dir on a writable file system (nothing written before was changed)",
                 errno.EACCES: "choose an output_dir you can write (nothing written before was changed)",
                 errno.EPERM: "choose an output_dir you can write (nothing written before was changed)"}


def _key(run: str | Path) -> str:
    return os.path.realpath(run)


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Turn SIGTERM (a scheduler's stop, `kill`) into KeyboardInterrupt, so it ends a run as Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum, frame):
        raise KeyboardInterrupt("SIGTERM")

    previous = signal.signal(signal.SIGTERM, _raise)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def check_output_dir(run: Path) -> None:
    """Refuse an output_dir that is a file, or lies under one, before anything is written."""
    for path in (run, *run.parents):
        if path.exists() and not path.is_dir():
            raise HelloraError(f"output_dir {run}: {path} is a file, not a folder; choose another output_dir "
                               f"(nothing was changed)")
        if path.exists():
            return


@contextmanager
def hold_run_folder(output_dir: str | Path) -> Iterator[None]:
    """Hold `output_dir`'s lock while the body runs, and record in run.json how the body ended if it did not finish.

    The first process (RANK 0, or the only one) takes the lock, so a second launch into the same folder (by any
    path) is refused instead of interleaving; other ranks of one launch do not. A failure to write (disk full,
    read-only, no permission) becomes one `HelloraError` line naming the file; an interruption is logged with how
    to resume and re-raised as KeyboardInterrupt.
    """
    run = Path(output_dir)
    check_output_dir(run)
    try:
        with nullcontext() if int(os.environ.get("RANK", "0")) != 0 else folder_lock(run), _sigterm_interrupts():
            if int(os.environ.get("RANK", "0")) == 0:
                remove_leftovers(run)
            try:
                yield
            except TrainingDiverged as e:
                _end(run, "diverged", str(e), e.step)
                raise
            except KeyboardInterrupt as e:
                reached = _end(run, "interrupted", str(e) or "KeyboardInterrupt")
                log.error("interrupted (%s)%s; rerun the same command to resume%s, or choose another output_dir to "
                          "start over", str(e) or "Ctrl-C", f" at step {reached['step']}" if reached.get("step")
                          else "", f" from {reached['resume_from']}" if reached.get("resume_from") else "")
                raise
            except BaseException as e:
                _end(run, "failed", f"{type(e).__name__}: {e}")
                raise
            finally:
                _RECORDERS.pop(_key(run), None)
    except OSError as e:
        if e.errno not in _WRITE_ERRORS:
            raise
        raise HelloraError(f"{e.filename or run}: {e.strerror or os.strerror(e.errno)}; {_WRITE_ERRORS[e.errno]}") \
            from None


def remove_leftovers(run: Path) -> list[str]:
    """Delete what a killed writer of this run left half-done: hellora's temporary files and folders
    (`.adapter.*.tmp`, `.placement.json.*.tmp`, `.checkpoint-N.*.tmp`, ...) and folders it had moved aside
    (`.*.old-*`), in the run folder and its checkpoints/. Only in a run hellora made (run.json with its format),
    and only while holding the run's lock, so no live writer owns them. Returns the removed names."""
    import fnmatch
    import shutil

    record = run / "run.json"
    try:
        ours = json.loads(record.read_text()).get("format") == RUN_FORMAT
    except (OSError, ValueError, AttributeError):
        ours = False
    if not ours:
        return []
    removed = []
    for folder in (run, run / "checkpoints"):
        if not folder.is_dir() or folder.is_symlink():
            continue
        for entry in folder.iterdir():
            if not (fnmatch.fnmatchcase(entry.name, ".*.tmp") or fnmatch.fnmatchcase(entry.name, ".*.old-*")):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed.append(str(entry.relative_to(run)))
    if removed:
        log.info("removed %d leftover temporary file(s) of an interrupted write in %s", len(removed), run)
    return removed


def _reached(run: Path) -> dict:
    """The last training step metrics.jsonl holds, and the newest checkpoint (what a rerun starts from)."""
    step = None
    try:
        for line in (run / "metrics.jsonl").read_text().splitlines():
            try:
                step = json.loads(line).get("step", step)
            except (json.JSONDecodeError, AttributeError):
                continue
    except OSError:
        pass
    checkpoints = list_checkpoints(run / "checkpoints")
    return {"step": step, "resume_from": checkpoints[-1].name if checkpoints else None}


def _end(run: Path, status: str, reason: str, step: int | None = None) -> dict:
    """Write how this process's attempt on `run` ended into run.json (only when this process is recording it);
    a failure to write is logged, never raised over the original error."""
    reached = _reached(run)
    if step is not None:
        reached["step"] = step
    recorder = _RECORDERS.get(_key(run))
    if recorder is None or not recorder.main:
        return reached
    recorder.data.update(status=status, reason=reason.splitlines()[0] if reason else reason, **reached,
                         ended=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    try:
        recorder.save()
    except OSError as e:
        log.error("could not record status %r in %s: %s", status, recorder.path, e)
    return reached


def read_run_record(path: str | Path) -> dict:
    """A run.json, checked as untrusted input before a rerun builds on it (one line naming the field): an object
    whose status is text, steps and restartable objects, attempts and config_changes lists."""
    from hellora.utils.records import mapping, optional_text

    where = f"run status {path}"
    record = mapping(read_json(path, "run status"), where)
    optional_text(record.get("status"), f"{where}: field 'status'")
    optional_text(record.get("run_id"), f"{where}: field 'run_id'")
    for key in ("steps", "restartable"):
        mapping(record.get(key), f"{where}: field {key!r}", optional=True)
    for key in ("attempts", "config_changes"):
        if not isinstance(record.get(key, []), list):
            raise HelloraError(f"{where}: field {key!r} must be a list, got {type(record[key]).__name__}")
    return record


def run_finished(run: str | Path) -> bool:
    """Whether `run` holds a run whose run.json says it finished (or completed training degenerate / diverged)."""
    status = Path(run) / "run.json"
    data = read_run_record(status) if status.is_file() else {}
    return data.get("status") == "finished" or (data.get("status") in ("degenerate", "diverged")
                                                and bool(data.get("completed")))


def _reresolved(saved: Path) -> str | None:
    """A saved config.yaml as this version resolves it: fields added since it was written take their defaults,
    so an unfinished run from an older hellora still resumes when nothing it set has changed."""
    try:
        return dump_config(load_run_config(saved).resolved())
    except HelloraError:
        return None


def _differences(old: dict, new: dict) -> dict[str, tuple]:
    """{"section.key": (old, new)} for every field whose value differs (top-level scalars as "key")."""
    found = {}
    for section in new:
        if isinstance(new[section], dict):
            for key, value in new[section].items():
                if (old.get(section) or {}).get(key) != value:
                    found[f"{section}.{key}"] = ((old.get(section) or {}).get(key), value)
        elif old.get(section) != new[section]:
            found[section] = (old.get(section), new[section])
    return found


def check_run_folder(run: Path, config_text: str, *, restart: bool = False) -> bool:
    """True when `run` holds an unfinished run of the same config (resume); raises for anything else there.

    With `restart` (`--restart-from-checkpoint`) the config may differ from the saved one in the `RESTARTABLE`
    fields only; the run then continues from its newest intact checkpoint with the new values."""
    check_output_dir(run)
    if run_finished(run):
        raise HelloraError(f"{run} already holds a finished run; choose another output_dir (nothing was changed)")
    saved = run / "config.yaml"
    if saved.is_file():
        text = saved.read_text()
        current = _reresolved(saved) if text != config_text else text  # re-parsed only when the text differs
        if current != config_text:
            old, new = yaml.safe_load(current or text), yaml.safe_load(config_text)
            diffs = _differences(old, new) or {"output_dir": (None, None)}
            fixed = [name for name in diffs if name not in RESTARTABLE]
            if restart and not fixed:
                return True
            first = (fixed or list(diffs))[0]
            hint = ("only " + ", ".join(RESTARTABLE) + " may change with --restart-from-checkpoint" if restart or
                    not set(diffs) <= set(RESTARTABLE) else "to continue from the last checkpoint with the new value, "
                    "rerun with --restart-from-checkpoint")
            raise HelloraError(f"{run} holds a run with another config (first difference: {first}); {hint}, or "
                               f"choose another output_dir, or start over with --overwrite (nothing was changed)")
        return True
    if run.is_dir() and any(run.iterdir()):
        raise HelloraError(f"{run} is not empty and holds no hellora run; choose another output_dir")
    return False


def _restartable(config: RunConfig) -> dict:
    return {name: getattr(getattr(config, name.split(".")[0]), name.split(".")[1]) for name in RESTARTABLE}


class RunRecorder:
    """run.json: written atomically after every step, by the main process only.

    A rerun keeps the earlier attempts' steps, their endings (`attempts`; one left `running` was killed) and
    `config_changes`; a change of a
    `RESTARTABLE` field since the last attempt is appended to `config_changes` with the checkpoint it applies from.
    """

    def __init__(self, run: Path, config: RunConfig, accelerator) -> None:
        self.path = run / "run.json"
        self.main = accelerator.is_main_process
        previous = read_run_record(self.path) if self.path.is_file() else {}
        values = _restartable(config)
        changes = list(previous.get("config_changes", []))
        restartable = previous.get("restartable")
        changed = {k: {"old": restartable.get(k), "new": v} for k, v in values.items()
                   if restartable is not None and restartable.get(k) != v}
        if changed:
            newest = list_checkpoints(run / "checkpoints")
            changes.append({"changes": changed, "from_checkpoint": newest[-1].name if newest else None,
                            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
            log.warning("continuing %s with %s", run, ", ".join(f"{k} {c['old']} -> {c['new']}"
                                                                 for k, c in changed.items()))
        attempts = list(previous.get("attempts", []))
        if previous.get("status") not in (None, "running", "finished"):
            attempts.append({k: previous.get(k) for k in ("status", "reason", "step", "resume_from", "ended")})
        elif previous.get("status") == "running":  # we hold the lock, so that process is gone: killed (-9, power)
            attempts.append({"status": "killed", "reason": f"process {previous.get('pid', '?')} ended without "
                             f"recording why (SIGKILL, out of memory, power loss)", **_reached(run)})
        run_id = previous.get("run_id") if isinstance(previous.get("run_id"), str) else new_run_id()
        self.data = {"format": RUN_FORMAT, "run_id": run_id, "status": "running", "pid": os.getpid(), "method": config.adapter.method,
                     "processes": accelerator.num_processes, "meta": run_metadata(config.train.seed),
                     "restartable": values, "config_changes": changes, "attempts": attempts,
                     "steps": previous.get("steps") or {}}
        _RECORDERS[_key(run)] = self

    @property
    def run(self) -> Path:
        """The run folder this records (run.json's folder)."""
        return self.path.parent

    def step(self, name: str, **values: Any) -> None:
        self.data["steps"][name] = values
        self.save()

    def save(self) -> None:
        if self.main:
            atomic_write_json(self.path, self.data)
