"""Selection strategies as pure functions, on hand-made counts."""

import pytest

from hellora.placement import (SELECTORS, STRATEGIES, HotExpertPlacement, cold_entropy_experts, cold_topk,
                               coverage_experts, entropy_experts, layer_topk, model_topk, needs_k, needs_reference,
                               random_experts, select_experts)
from hellora.utils.errors import HelloraError
from hellora.choices import Strategy

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


def test_cold_entropy_keeps_entropys_budgets_but_takes_the_least_routed():
    counts = {0: [100, 1, 1, 1, 1, 1, 1, 1], 1: [10] * 8, 2: [0, 40, 30, 20, 10, 5, 3, 2]}
    hot, cold = entropy_experts(counts, 3), cold_entropy_experts(counts, 3)
    assert {l: len(v) for l, v in cold.items()} == {l: len(v) for l, v in hot.items()}
    assert cold[0] == [1] and hot[0] == [0]  # the peaked layer: one expert, the least used (ties to the lower id)
    assert cold[1] == hot[1] == [0, 1, 2, 3, 4]  # a flat layer has no cold side
    for layer, row in counts.items():  # every chosen expert is routed no more than any expert left out
        assert max(row[e] for e in cold[layer]) <= min(row[e] for e in range(8) if e not in cold[layer])
    assert select_experts(counts, "cold-entropy", 3) == cold == select_experts(counts, Strategy.COLD_ENTROPY, 3)


def test_every_strategy_but_manual_has_a_selector():
    assert set(SELECTORS) == set(Strategy) - {Strategy.MANUAL}
    assert STRATEGIES == tuple(s.value for s in SELECTORS)
    for strategy in SELECTORS:
        reference = COUNTS if needs_reference(strategy) else None
        chosen = select_experts(COUNTS, strategy, 2, seed=1, p=0.5, reference=reference)
        assert set(chosen) == set(COUNTS) and all(chosen.values()), strategy
    assert select_experts({1: [], 4: []}, "first-k", 3, num_experts=8) == {1: [0, 1, 2], 4: [0, 1, 2]}
    assert needs_k("layer") and not needs_k("coverage") and not needs_k(Strategy.ALL)


def test_manual_placements_are_written_not_selected(tmp_path):
    with pytest.raises(HelloraError, match="'manual' marks a placement written by hand"):
        select_experts(COUNTS, "manual", 2)
    path = tmp_path / "hand.json"
    path.write_text('{"format": "hellora.placement/1", "num_experts": 8, "experts": {"0": [2, 1]}}')
    placement = HotExpertPlacement.load(path)
    assert placement.strategy is Strategy.MANUAL and placement.experts == {0: [1, 2]}
    path.write_text('{"format": "hellora.placement/1", "num_experts": 8, "strategy": "saved", "experts": {"0": [1]}}')
    assert HotExpertPlacement.load(path).strategy is Strategy.MANUAL  # a hand-made alias some files hold
    path.write_text('{"format": "hellora.placement/1", "num_experts": 8, "strategy": "hot", "experts": {"0": [1]}}')
    with pytest.raises(HelloraError, match="placement.strategy: unknown value 'hot'"):
        HotExpertPlacement.load(path)


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
