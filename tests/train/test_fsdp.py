"""FSDP settings checked in one process: what is refused (and that nothing is written), and clipping of
replicated gradients exactly as torch clips them."""

import json

import pytest
import torch
from torch import nn

from hellora.cli import main
from hellora.loop.fsdp import check_fsdp_supported, clip_grad_norm_
from hellora.utils.errors import HelloraError
from tests.train.test_fsdp_gloo import write_data


@pytest.mark.parametrize("override, message", [
    ("adapter.method=fft", "full fine-tuning"),
    ("adapter.variant=dora", "dora is not supported under FSDP"),
    ("profile.mode=forward", "profile.mode forward is not supported under FSDP"),
])
def test_unsupported_settings_are_refused_before_anything_is_written(write_recipe, tmp_path, capsys, override,
                                                                     message):
    data = write_data(tmp_path / "train.jsonl", 48, 0)
    recipe = write_recipe(data=f"{{task: gsm8k, train: {data}, limit: 48, max_length: 96, max_prompt_length: 64}}")
    assert main(["train", str(recipe), "train.fsdp=true", override, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "train.fsdp" in err and message in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()


def test_forward_mode_is_not_refused_when_the_run_does_not_profile(write_recipe, tiny_model_dir, tmp_path):
    """profile.mode forward is refused under FSDP only when the run would profile: not with a saved placement."""
    from transformers import AutoModelForCausalLM

    from tests.helpers import first_k_placement

    placement = tmp_path / "placement.json"
    first_k_placement(AutoModelForCausalLM.from_pretrained(tiny_model_dir)).save(placement)
    data = write_data(tmp_path / "train.jsonl", 16, 0)
    recipe = write_recipe(data=f"{{task: gsm8k, train: {data}, limit: 16, max_length: 96, max_prompt_length: 64}}")
    assert main(["train", str(recipe), "train.fsdp=true", "profile.mode=forward", f"selection.path={placement}",
                 "train.max_steps=1", "--no-progress"]) == 0
    steps = json.loads((tmp_path / "run" / "run.json").read_text())["steps"]
    assert "profile" not in steps and steps["select"]["path"] == str(placement)


def test_planned_profile_mode_is_decided_once(write_recipe, tmp_path):
    from hellora.config import load_run_config
    from hellora.profiling.stage import planned_profile_mode

    recipe, run = write_recipe(), tmp_path / "run"
    plan = lambda *o: planned_profile_mode(load_run_config(recipe, list(o)), run)  # noqa: E731
    assert plan() == "warmup" and plan("profile.mode=forward") == "forward"
    assert plan("adapter.method=lora") is None and plan("profile.mode=forward", "selection.path=p.json") is None
    assert plan("profile.path=p.json") is None
    assert plan("adapter.variant=lori_s", "adapter.lori_from=d") is None  # HELLoRI-S keeps LoRI-D's placement
    with pytest.raises(HelloraError, match="profile.mode: method 'hellora' needs a profile"):
        plan("profile.mode=none")
    run.mkdir()
    (run / "placement.json").write_text("{}")
    assert plan("profile.mode=none") is None  # a resumed run already chose its experts


def test_forward_profile_from_a_file_is_allowed():
    check_fsdp_supported("hellora", "none", "none")
    check_fsdp_supported("lora", "lori_d", "forward")  # lora never profiles
    with pytest.raises(HelloraError, match="profile.path"):
        check_fsdp_supported("hellora", "lori_d", "forward")
    with pytest.raises(HelloraError, match="train.mixed_precision: fp16"):
        check_fsdp_supported("lora", "none", "none", "fp16")


def test_clipping_replicated_gradients_is_torchs():
    torch.manual_seed(0)
    ours, theirs = nn.Linear(5, 4), nn.Linear(5, 4)
    theirs.load_state_dict(ours.state_dict())
    for net in (ours, theirs):
        net(torch.ones(3, 5)).pow(2).sum().backward()
    norm = clip_grad_norm_(ours.parameters(), 0.1)
    reference = torch.nn.utils.clip_grad_norm_(theirs.parameters(), 0.1)
    assert torch.equal(norm, reference) and norm > 0.1
    assert all(torch.equal(a.grad, b.grad) for a, b in zip(ours.parameters(), theirs.parameters()))
