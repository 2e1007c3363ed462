"""Selection strategies as pure functions, on hand-made counts."""

import pytest

from hellora.placement import (HotExpertPlacement, cold_topk, coverage_experts, entropy_experts, layer_topk,
                               model_topk, random_experts, select_experts)
from hellora.utils.errors import HelloraError

COUNTS = {
    0: [50, 10, 10, 30, 0, 0, 5, 5],
    3: [1, 2, 3, 4, 5, 6, 7, 100],
}


def test_layer_topk_and_tie_break_to_lower_id():
    assert layer_topk(COUNTS, 2) == {0: [0, 3], 3: [6, 7]}
    assert layer_topk(COUNTS, 3) == {0: [0, 1, 3], 3: [5, 6, 7]}  # 10 vs 10: expert 1 before 2
    assert layer_topk({0: [0, 0, 0, 0]}, 2) == {0: [0, 1]}


def test_model_level_uses_one_global_ranking():
    # totals: 51 12 13 34 5 6 12 105 -> 7, 0, 3
    assert model_topk(COUNTS, 3) == {0: [0, 3, 7], 3: [0, 3, 7]}


def test_cold_is_bottom_k_with_ties_to_lower_id():
    assert cold_topk(COUNTS, 2) == {0: [4, 5], 3: [0, 1]}


def test_random_is_seeded_and_deterministic():
    a = random_experts([0, 3], 8, 3, seed=7)
    assert a == random_experts([0, 3], 8, 3, seed=7)
    assert a != random_experts([0, 3], 8, 3, seed=8)
    assert all(len(set(v)) == 3 for v in a.values())


def test_coverage_reaches_mass_p():
    # layer 0: 110 assignments, 50 on expert 0; layer 3: 128, 100 on expert 7
    assert coverage_experts(COUNTS, 0.45) == {0: [0], 3: [7]}
    assert coverage_experts(COUNTS, 0.8) == {0: [0, 1, 3], 3: [6, 7]}
    assert coverage_experts(COUNTS, 1.0)[0] == [0, 1, 2, 3, 6, 7]


def test_entropy_gives_flat_layers_more_experts():
    counts = {0: [100, 1, 1, 1, 1, 1, 1, 1], 1: [10] * 8}
    out = entropy_experts(counts, 3)
    assert len(out[0]) < len(out[1]) and out[0] == [0]


@pytest.mark.parametrize("k", [0, 9, -1, 2.5])
def test_k_outside_range_is_an_error(k):
    with pytest.raises(HelloraError, match="k: number of hot experts"):
        layer_topk(COUNTS, k)


def test_unknown_strategy_names_the_field():
    with pytest.raises(HelloraError, match="selection.strategy"):
        select_experts(COUNTS, "hottest", 2)


def test_placement_json_round_trip(tmp_path):
    placement = HotExpertPlacement(layer_topk(COUNTS, 2), 8, "layer", k=2, model_id="m", fingerprint="f" * 16)
    placement.save(tmp_path / "p.json")
    back = HotExpertPlacement.load(tmp_path / "p.json")
    assert back.experts == placement.experts and back.fingerprint == placement.fingerprint
    (tmp_path / "bad.json").write_text('{"format": "hellora.placement/1", "num_experts": 4, "experts": {"0": [9]}}')
    with pytest.raises(HelloraError, match="outside"):
        HotExpertPlacement.load(tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text('{"format": \n oops')
    with pytest.raises(HelloraError, match="line 2"):
        HotExpertPlacement.load(tmp_path / "broken.json")
