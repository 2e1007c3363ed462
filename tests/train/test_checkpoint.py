"""Checkpoint RNG state: each process saves and gets back its own generators; older checkpoints still resume."""

import json
import random

import numpy as np
import torch
from safetensors.torch import save_file

from hellora.loop.checkpoint import load_checkpoint, rng_state, save_checkpoint


def _trainable():
    weight = torch.nn.Parameter(torch.randn(3))
    optimizer = torch.optim.AdamW([weight])
    weight.grad = torch.ones(3)
    optimizer.step()
    return {"w": weight}, optimizer


def _seed_everything(seed):
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


def _draws():
    return torch.rand(4).tolist(), random.random(), float(np.random.rand())


def _states_and_draws(seeds):
    """As if process r had seeded with seeds[r]: its saved state and what it draws next."""
    states, draws = [], []
    for seed in seeds:
        _seed_everything(seed)
        states.append(rng_state())
        draws.append(_draws())
    return states, draws


def test_each_rank_gets_back_its_own_rng_state(tmp_path):
    states, draws = _states_and_draws([1, 2])
    params, optimizer = _trainable()
    path = save_checkpoint(tmp_path, 4, params, optimizer, {}, keep=2, rng_states=states)
    assert sorted(p.name for p in path.iterdir() if p.name.startswith("rng")) == ["rng_rank0.json", "rng_rank1.json"]
    for rank in (1, 0):
        _seed_everything(99)
        load_checkpoint(path, params, optimizer, rank=rank)
        assert _draws() == draws[rank]


def test_a_rank_the_checkpoint_does_not_know_gets_rank_zeros_state(tmp_path):
    states, draws = _states_and_draws([5])
    params, optimizer = _trainable()
    path = save_checkpoint(tmp_path, 2, params, optimizer, {}, keep=1, rng_states=states)
    _seed_everything(99)
    load_checkpoint(path, params, optimizer, rank=3)  # resumed with more processes than it was saved by
    assert _draws() == draws[0]


def test_checkpoint_with_one_rng_file_from_before_still_resumes_every_rank(tmp_path):
    params, optimizer = _trainable()
    _seed_everything(7)
    path = save_checkpoint(tmp_path, 2, params, optimizer, {}, keep=1)
    expected_torch, expected_python = torch.rand(4).tolist(), random.random()
    for f in path.glob("rng_rank*.json"):  # rewrite it the way checkpoints were saved before per-rank files
        f.unlink()
    _seed_everything(7)
    save_file({"torch_cpu": torch.get_rng_state()}, str(path / "rng.safetensors"))
    state = json.loads((path / "state.json").read_text())
    state["python_rng"] = json.loads(json.dumps(random.getstate()))
    (path / "state.json").write_text(json.dumps(state))
    for rank in (0, 1):
        _seed_everything(99)
        load_checkpoint(path, params, optimizer, rank=rank)
        assert (torch.rand(4).tolist(), random.random()) == (expected_torch, expected_python)
