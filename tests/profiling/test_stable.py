"""Stop-when-stable profiling: the tracker's rule, and both profiling modes stopping early with the fraction
used recorded, counts equal to counting just those batches."""

import json

import pytest
import torch

from hellora.config import load_run_config
from hellora.profiling import profile_experts
from hellora.profiling.stable import StabilityTracker, hot_sets
from hellora.profiling.stage import forward_profile
from hellora.models.tiny import tiny_model
from hellora.utils.errors import HelloraError


def test_hot_sets_break_ties_by_lower_id():
    assert hot_sets(torch.tensor([[3, 5, 5, 0]]), 2) == [frozenset({1, 2})]
    assert hot_sets(torch.tensor([[1, 1, 1, 1]]), 2) == [frozenset({0, 1})]


def test_tracker_stops_after_window_unchanged_batches_and_restarts_on_a_change():
    t = StabilityTracker(k=1, window=2, threshold=1.0)
    seq = [[[5, 1]], [[9, 2]], [[12, 3]], [[12, 20]], [[13, 21]], [[14, 22]]]
    answers = [t.update(torch.tensor(c)) for c in seq]
    # hot {0} at batches 1-3: stable once two earlier snapshots agree (batch 3); {1} from batch 4: again at 6
    assert answers == [False, False, True, False, False, True]
    assert t.stable_at == 3
    rec = t.record(planned=10, fraction=0.1, wall_s=1.0)
    assert rec["batches_used"] == 3 and rec["fraction_used"] == pytest.approx(0.03) and rec["stopped_early"]


def test_tracker_waits_until_every_layer_has_seen_tokens_and_checks_its_settings():
    t = StabilityTracker(k=1, window=1, threshold=1.0)
    assert not t.update(torch.tensor([[1, 0], [0, 0]]))
    assert not t.update(torch.tensor([[2, 0], [1, 0]]))
    assert t.update(torch.tensor([[3, 0], [2, 0]]))
    with pytest.raises(HelloraError, match="profile.stable_window"):
        StabilityTracker(k=1, window=0, threshold=1.0)
    with pytest.raises(HelloraError, match="profile.stable_jaccard"):
        StabilityTracker(k=1, window=2, threshold=1.5)


class _OneProcess:
    process_index, num_processes, is_main_process = 0, 1, True
    device = torch.device("cpu")


def _sample(n=48, length=12, vocab=100, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [{"input_ids": torch.randint(3, vocab, (length,), generator=g).tolist(),
             "attention_mask": [1] * length, "labels": [-100] * length} for _ in range(n)]


def test_forward_profile_stops_when_stable_and_counts_only_what_it_saw():
    model = tiny_model("olmoe", vocab_size=104)
    sample = _sample()
    config = load_run_config(None, ["profile.until_stable=true", "profile.stable_window=2",
                                    "profile.stable_jaccard=0.5", "profile.batch_size=4", "selection.k=2"])
    profile = forward_profile(model, sample, config, 0, {"fraction": 0.1}, _OneProcess(), False)
    rec = profile.meta["until_stable"]
    assert rec["stopped_early"] and rec["batches_used"] < rec["batches_planned"] == 12
    assert profile.source["fraction_used"] == pytest.approx(0.1 * rec["batches_used"] / 12)
    from hellora.data import PadCollator

    collate = PadCollator(0)
    seen = [collate(sample[i:i + 4]) for i in range(0, 4 * rec["batches_used"], 4)]
    assert profile.counts == profile_experts(model, seen, progress=False).counts
    json.dumps(profile.to_dict())  # profile.json holds it


def test_without_until_stable_every_batch_is_counted():
    model = tiny_model("olmoe", vocab_size=104)
    config = load_run_config(None, ["profile.batch_size=4"])
    profile = forward_profile(model, _sample(), config, 0, {}, _OneProcess(), False)
    assert "until_stable" not in profile.meta and sum(profile.tokens) == 2 * 48 * 12  # 2 MoE layers


@pytest.mark.slow
def test_warmup_profile_stops_when_stable(write_recipe, tmp_path):
    from hellora.cli import main
    from hellora.profiling import ExpertProfile

    recipe = write_recipe(out="stable")
    args = ["train", str(recipe), "profile.fraction=1.0", "profile.until_stable=true", "profile.stable_window=1",
            "profile.stable_jaccard=0.3", "train.max_steps=1", "--no-progress"]
    assert main(args) == 0
    profile = ExpertProfile.load(tmp_path / "stable" / "profile.json")
    rec = profile.meta["until_stable"]
    assert profile.mode == "warmup" and rec["batches_used"] <= rec["batches_planned"]
    assert profile.meta["warmup_steps"] == rec["batches_used"]
    status = json.loads((tmp_path / "stable" / "run.json").read_text())
    assert status["steps"]["profile"]["until_stable"] == rec


def test_bad_stability_settings_are_refused_before_the_run_folder_is_touched(write_recipe, tmp_path):
    from hellora.cli import main

    recipe = write_recipe(out="bad")
    assert main(["train", str(recipe), "profile.until_stable=true", "profile.stable_window=0", "--no-progress"]) != 0
    assert not (tmp_path / "bad").exists()
