"""Training checkpoints in safetensors + JSON only (nothing is ever unpickled).

A checkpoint folder `checkpoints/step-000120/` holds:
    trainable.safetensors   every trainable parameter by name
    optimizer.safetensors   AdamW state tensors, keyed "<param index>.<exp_avg|exp_avg_sq|step>"
    rng.safetensors         torch CPU (and CUDA) generator states
    state.json              optimizer step, param groups (hyper-parameters), Python RNG state, schedule position
It is written into a temporary sibling folder and renamed into place, so a kill mid-save leaves the previous
checkpoint as the latest complete one. Resuming from it reproduces an uninterrupted single-process run bitwise on
CPU. With several processes only rank 0's RNG state is saved, which matters only when dropout is on.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from hellora.utils.errors import HelloraError

PREFIX = "step-"


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
                    extra: dict, keep: int) -> Path:
    """Write checkpoint `step` under `folder` atomically and prune all but the newest `keep`."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{PREFIX}{step:06d}"
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=folder))
    try:
        save_file({n: t.detach().cpu().contiguous() for n, t in trainable.items()}, str(tmp / "trainable.safetensors"))
        opt_tensors, groups = _optimizer_tensors(optimizer)
        save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
        rng = {"torch_cpu": torch.get_rng_state()}
        if torch.cuda.is_available():
            for i, s in enumerate(torch.cuda.get_rng_state_all()):
                rng[f"torch_cuda_{i}"] = s
        save_file(rng, str(tmp / "rng.safetensors"))
        state = {"step": step, "param_groups": groups, "python_rng": _jsonable(random.getstate()), **extra}
        (tmp / "state.json").write_text(json.dumps(state, indent=1))
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
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


def load_checkpoint(path: Path, trainable: dict[str, torch.nn.Parameter], optimizer: torch.optim.Optimizer) -> dict:
    """Restore parameters, optimizer and RNG state from `path`; returns its state.json."""
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
    rng = load_file(str(path / "rng.safetensors"))
    torch.set_rng_state(rng["torch_cpu"])
    if torch.cuda.is_available():
        cuda = [rng[k] for k in sorted(k for k in rng if k.startswith("torch_cuda_"))]
        if len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
    random.setstate(_tupled(state["python_rng"]))
    return state
