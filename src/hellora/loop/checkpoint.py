"""Training checkpoints in safetensors + JSON only (nothing is ever unpickled).

A checkpoint folder `checkpoints/step-000120/` holds:
    trainable.safetensors   every trainable parameter by name
    optimizer.safetensors   AdamW state tensors, keyed "<param index>.<exp_avg|exp_avg_sq|step>"
    rng_rank{N}.json        process N's random generators: torch CPU and CUDA, Python `random`, NumPy
    state.json              optimizer step, param groups (hyper-parameters), schedule position, run statistics
    manifest.json           sha256 and size of every other file, written last
It is written into a temporary sibling folder, fsynced and renamed into place (`hellora.utils.io.atomic_dir`), so a
kill or a host crash mid-save leaves the previous checkpoint as the latest complete one.

A checkpoint can still be damaged afterwards (a disk error, a truncated copy, a hand edit). `usable_checkpoint`
therefore checks the newest ones before a resume: every file against the manifest, every tensor finite, every JSON
file readable. Damaged ones are moved aside to `checkpoints/damaged-<name>-<time>/` (kept for inspection, never
deleted) and named in one warning line, and the newest intact one is used. Checkpoints without a manifest (written
by an older hellora) are still used after the same readability and finiteness checks, with a warning. Resuming from it reproduces an uninterrupted
run bitwise on CPU, dropout included: each process gets back its own generators, not rank 0's.
Checkpoints written before per-process RNG files hold one `rng.safetensors` (+ Python's state in state.json),
which every process then restores.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import random
import re
import shutil
import time
from pathlib import Path
from types import ModuleType
from typing import Any, Mapping

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from hellora.utils.errors import HelloraError
from hellora.utils.io import atomic_dir, sha256_file

log = logging.getLogger(__name__)

PREFIX = "step-"
MANIFEST = "manifest.json"
DAMAGED = "damaged-"


def _numpy() -> ModuleType | None:
    try:
        import numpy
    except ImportError:
        return None
    return numpy


def _b64(state: torch.Tensor) -> str:
    return base64.b64encode(bytes(state.cpu().tolist())).decode("ascii")  # uint8 generator state


def _from_b64(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)


def rng_state() -> dict:
    """This process's random generators as a JSON-able dict (torch states are base64 bytes)."""
    state = {"torch_cpu": _b64(torch.get_rng_state()), "python": _jsonable(random.getstate())}
    if torch.cuda.is_available():
        state["torch_cuda"] = [_b64(s) for s in torch.cuda.get_rng_state_all()]
    np = _numpy()
    if np is not None:
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        state["numpy"] = [kind, keys.tolist(), int(pos), int(has_gauss), float(gauss)]
    return state


def seed_rng(seed: int) -> None:
    """Seed torch (CPU and every CUDA device), Python `random` and NumPy, as a fresh run does per process."""
    torch.manual_seed(seed)
    random.seed(seed)
    np = _numpy()
    if np is not None:
        np.random.seed(seed % 2**32)


def set_rng_state(state: dict) -> None:
    """Restore generators saved by `rng_state`; CUDA only when the device count matches, NumPy when installed."""
    torch.set_rng_state(_from_b64(state["torch_cpu"]))
    cuda = state.get("torch_cuda")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([_from_b64(s) for s in cuda])
    random.setstate(_tupled(state["python"]))
    np = _numpy()
    if np is not None and "numpy" in state:
        kind, keys, pos, has_gauss, gauss = state["numpy"]
        np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))


def _rng_file(rank: int) -> str:
    return f"rng_rank{rank}.json"


def saved_rng_state(path: Path, rank: int, state: dict) -> dict:
    """Process `rank`'s generators in checkpoint `path` (`state` is its state.json).

    A checkpoint saved by fewer processes gives the extra ones rank 0's state; one from before per-process files
    gives every rank its single saved state.
    """
    own = path / _rng_file(rank)
    if own.is_file():
        return json.loads(own.read_text())
    if (path / _rng_file(0)).is_file():
        log.warning("checkpoint %s holds no RNG state for process %d (saved by fewer processes); using process 0's",
                    path, rank)
        return json.loads((path / _rng_file(0)).read_text())
    legacy = load_file(str(path / "rng.safetensors"))
    cuda = [legacy[k] for k in sorted((k for k in legacy if k.startswith("torch_cuda_")),
                                      key=lambda k: int(k.rsplit("_", 1)[1]))]
    return {"torch_cpu": _b64(legacy["torch_cpu"]), "torch_cuda": [_b64(s) for s in cuda],
            "python": state["python_rng"]}


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list[dict]]:
    state = optimizer.state_dict()
    tensors = {}
    for index, values in state["state"].items():
        for key, value in values.items():
            tensor = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            tensors[f"{index}.{key}"] = tensor.detach().cpu().contiguous()
    groups = [{k: v for k, v in g.items()} for g in state["param_groups"]]
    return tensors, groups


def _save_tensors(tensors: dict[str, torch.Tensor], path: Path) -> None:
    """`save_file`, with safetensors' I/O failures (disk full, read-only) raised as the OSError they are."""
    try:
        save_file(tensors, str(path))
    except SafetensorError as e:
        code = re.search(r"code: (\d+)", str(e))
        if code is None:
            raise
        raise OSError(int(code.group(1)), os.strerror(int(code.group(1))), str(path)) from None


def save_checkpoint(folder: Path, step: int, trainable: Mapping[str, torch.Tensor], optimizer: torch.optim.Optimizer,
                    extra: dict, keep: int, rng_states: list[dict] | None = None) -> Path:
    """Write checkpoint `step` under `folder` atomically and prune all but the newest `keep`.

    `rng_states[r]` is process r's `rng_state()` (gathered by the caller); by default this process's, as rank 0.
    """
    final = folder / f"{PREFIX}{step:06d}"
    with atomic_dir(final) as tmp:
        _save_tensors({n: t.detach().cpu().contiguous() for n, t in trainable.items()}, tmp / "trainable.safetensors")
        opt_tensors, groups = _optimizer_tensors(optimizer)
        _save_tensors(opt_tensors, tmp / "optimizer.safetensors")
        for rank, rng in enumerate(rng_states or [rng_state()]):
            (tmp / _rng_file(rank)).write_text(json.dumps(rng))
        state = {"step": step, "param_groups": groups, **extra}
        (tmp / "state.json").write_text(json.dumps(state, indent=1))
        files = {f.name: {"sha256": sha256_file(f), "bytes": f.stat().st_size} for f in sorted(tmp.iterdir())}
        (tmp / MANIFEST).write_text(json.dumps({"files": files}, indent=1))
    for old in list_checkpoints(folder)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, tuple):
        return [_jsonable(o) for o in obj]
    return obj


def _tupled(obj: Any) -> Any:
    if isinstance(obj, list):
        return tuple(_tupled(o) for o in obj)
    return obj


def _step_of(path: Path) -> int | None:
    tail = path.name[len(PREFIX):]
    return int(tail) if path.name.startswith(PREFIX) and tail.isdigit() else None


def list_checkpoints(folder: Path) -> list[Path]:
    """Checkpoint folders (`step-NNNNNN`), oldest first; `usable_checkpoint` says whether one is intact."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and _step_of(p) is not None]
    return sorted(found, key=lambda p: _step_of(p) or 0)  # (every folder found has a step)


def _finite(tensors: dict[str, torch.Tensor]) -> str | None:
    """The first tensor holding NaN or inf, by name (None when all are finite)."""
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return name
    return None


def checkpoint_problem(path: Path) -> str | None:
    """Why checkpoint `path` cannot be resumed from (None when it is intact): a file missing, truncated or
    changed since it was written, a tensor that is not finite, or a JSON file that does not parse."""
    manifest = path / MANIFEST
    try:
        if manifest.is_file():
            files = json.loads(manifest.read_text())["files"]
            for name, record in files.items():
                if not (path / name).is_file():
                    return f"{name} is missing"
                size = (path / name).stat().st_size
                if size != record["bytes"]:
                    return f"{name} has {size} bytes, not {record['bytes']}"
                if sha256_file(path / name) != record["sha256"]:
                    return f"{name} does not match its checksum"
        state = json.loads((path / "state.json").read_text())
        if not isinstance(state, dict) or "step" not in state or "param_groups" not in state:
            return "state.json lacks step or param_groups"
        for name in ("trainable.safetensors", "optimizer.safetensors"):
            bad = _finite(load_file(str(path / name)))
            if bad is not None:
                return f"{name} holds NaN or inf in {bad}"
        rng = sorted(path.glob("rng_rank*.json"))
        for f in rng:
            json.loads(f.read_text())
        if not rng:
            load_file(str(path / "rng.safetensors"))
    except FileNotFoundError as e:
        return f"{Path(e.filename).name if e.filename else 'a file'} is missing"
    except (OSError, ValueError, KeyError, TypeError, AttributeError, SafetensorError) as e:
        return f"unreadable ({type(e).__name__}: {str(e)[:120]})".replace("\n", " ")
    return None


def set_aside(path: Path) -> Path:
    """Move a damaged checkpoint to `damaged-<name>-<UTC time>` beside it, out of the resume candidates."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{DAMAGED}{path.name}-{stamp}")
    n = 1
    while target.exists():
        target, n = path.with_name(f"{DAMAGED}{path.name}-{stamp}-{n}"), n + 1
    path.rename(target)
    return target


def usable_checkpoint(folder: Path) -> Path | None:
    """The newest intact checkpoint under `folder` (None when there is none), after moving every damaged one newer
    than it aside with one warning line. Older checkpoints are not read: the newest intact one is all a resume
    needs. Temporary folders of saves a kill cut short are removed. Call it on one process only (it renames
    folders), then let every process load the result."""
    if folder.is_dir():  # saves a kill cut short: incomplete by construction, nothing to inspect
        for tmp in folder.glob(f".{PREFIX}*.tmp"):
            log.info("removing the incomplete checkpoint save %s", tmp.name)
            shutil.rmtree(tmp, ignore_errors=True)
    damaged = []
    found = None
    for path in reversed(list_checkpoints(folder)):
        problem = checkpoint_problem(path)
        if problem is None:
            found = path
            break
        damaged.append((path.name, problem, set_aside(path)))
    if damaged:
        log.warning("damaged checkpoint%s set aside: %s; resuming from %s", "s" * (len(damaged) > 1),
                    "; ".join(f"{name} ({why}) -> {moved.name}" for name, why, moved in damaged),
                    found.name if found else "the start (no intact checkpoint left)")
    if found is not None and not (found / MANIFEST).is_file():
        log.warning("checkpoint %s has no checksums (written by an older hellora); it was checked only for readable "
                    "files and finite tensors", found)
    return found


def load_checkpoint(path: Path, trainable: dict[str, torch.nn.Parameter], optimizer: torch.optim.Optimizer,
                    rank: int = 0) -> dict:
    """Restore parameters, optimizer and process `rank`'s RNG state from `path`; returns its state.json."""
    state = json.loads((path / "state.json").read_text())
    tensors = load_file(str(path / "trainable.safetensors"))
    missing = sorted(set(trainable) - set(tensors))
    if missing:
        raise HelloraError(f"checkpoint {path} does not match this run's trainable parameters (missing {missing[0]})")
    with torch.no_grad():
        for name, param in trainable.items():
            param.copy_(tensors[name].to(param.device))
    opt = load_file(str(path / "optimizer.safetensors"))
    params_by_index: dict[int, dict[str, torch.Tensor]] = {}
    for key, tensor in opt.items():
        index_text, name = key.split(".", 1)
        params_by_index.setdefault(int(index_text), {})[name] = tensor
    groups = state["param_groups"]
    device_params = [p for g in optimizer.param_groups for p in g["params"]]
    for index, values in params_by_index.items():
        values = {k: (v.to(device_params[index].device) if k != "step" else v) for k, v in values.items()}
        params_by_index[index] = values
    optimizer.load_state_dict({"state": params_by_index, "param_groups": groups})
    set_rng_state(saved_rng_state(path, rank, state))
    return state
