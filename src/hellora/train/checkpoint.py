"""Training checkpoints in safetensors + JSON only (nothing is ever unpickled).

A checkpoint folder `checkpoints/step-000120/` holds:
    trainable.safetensors   every trainable parameter by name
    optimizer.safetensors   AdamW state tensors, keyed "<param index>.<exp_avg|exp_avg_sq|step>"
    rng_rank{N}.json        process N's random generators: torch CPU and CUDA, Python `random`, NumPy
    state.json              optimizer step, param groups (hyper-parameters), schedule position
It is written into a temporary sibling folder and renamed into place (`hellora.utils.io.atomic_dir`), so a kill
mid-save leaves the previous checkpoint as the latest complete one. Resuming from it reproduces an uninterrupted
run bitwise on CPU, dropout included: each process gets back its own generators, not rank 0's.
Checkpoints written before per-process RNG files hold one `rng.safetensors` (+ Python's state in state.json),
which every process then restores.
"""

from __future__ import annotations

import base64
import json
import logging
import random
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from hellora.utils.errors import HelloraError
from hellora.utils.io import atomic_dir

log = logging.getLogger(__name__)

PREFIX = "step-"


def _numpy():
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


def save_checkpoint(folder: Path, step: int, trainable: dict[str, torch.Tensor], optimizer: torch.optim.Optimizer,
                    extra: dict, keep: int, rng_states: list[dict] | None = None) -> Path:
    """Write checkpoint `step` under `folder` atomically and prune all but the newest `keep`.

    `rng_states[r]` is process r's `rng_state()` (gathered by the caller); by default this process's, as rank 0.
    """
    final = folder / f"{PREFIX}{step:06d}"
    with atomic_dir(final) as tmp:
        save_file({n: t.detach().cpu().contiguous() for n, t in trainable.items()}, str(tmp / "trainable.safetensors"))
        opt_tensors, groups = _optimizer_tensors(optimizer)
        save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
        for rank, rng in enumerate(rng_states or [rng_state()]):
            (tmp / _rng_file(rank)).write_text(json.dumps(rng))
        state = {"step": step, "param_groups": groups, **extra}
        (tmp / "state.json").write_text(json.dumps(state, indent=1))
    for old in list_checkpoints(folder)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _jsonable(obj):
    if isinstance(obj, tuple):
        return [_jsonable(o) for o in obj]
    return obj


def _tupled(obj):
    if isinstance(obj, list):
        return tuple(_tupled(o) for o in obj)
    return obj


def list_checkpoints(folder: Path) -> list[Path]:
    """Complete checkpoints, oldest first."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and p.name.startswith(PREFIX) and (p / "state.json").is_file()]
    return sorted(found, key=lambda p: int(p.name[len(PREFIX):]))


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
    params_by_index = {}
    for key, tensor in opt.items():
        index, name = key.split(".", 1)
        params_by_index.setdefault(int(index), {})[name] = tensor
    groups = state["param_groups"]
    device_params = [p for g in optimizer.param_groups for p in g["params"]]
    for index, values in params_by_index.items():
        values = {k: (v.to(device_params[index].device) if k != "step" else v) for k, v in values.items()}
        params_by_index[index] = values
    optimizer.load_state_dict({"state": params_by_index, "param_groups": groups})
    set_rng_state(saved_rng_state(path, rank, state))
    return state
