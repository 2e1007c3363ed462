"""The retention-aware strategy (`retention`): experts specific to the target, on hand-made counts, through the
profile, the config and the CLI (`hellora select`, `hellora flops`)."""

import json

import pytest

from hellora.cli import main
from hellora.config import SelectionConfig, config_from_dict
from hellora.placement import layer_topk, needs_reference, retention_topk, select_experts
from hellora.profiling.profile import ExpertProfile
from hellora.utils.errors import HelloraError
from hellora.choices import Strategy

# layer 0: target shares .4 .3 .2 .1; reference (200 assignments) shares .5 .05 .25 .2
#          score = target - reference = -.1, +.25, -.05, -.1
# layer 1: target shares .5 .5 0 0; reference (1000 assignments) shares .5 .1 .3 .1 -> 0, +.4, -.3, -.1
#          (raw count differences -495, -95, -300, -100 would pick experts 1 and 3 instead: shares, not counts)
TARGET = {0: [40, 30, 20, 10], 1: [5, 5, 0, 0]}
REFERENCE = {0: [100, 10, 50, 40], 1: [500, 100, 300, 100]}


def test_retention_ranks_by_share_difference_by_hand():
    assert retention_topk(TARGET, REFERENCE, 1) == {0: [1], 1: [1]}
    assert retention_topk(TARGET, REFERENCE, 2) == {0: [1, 2], 1: [0, 1]}
    assert layer_topk(TARGET, 2)[0] == [0, 1]  # the hot experts: expert 0 is the reference's hottest too
    # k = 3 in layer 0: experts 0 and 3 tie at -0.1 exactly (.4 - .5 = .1 - .2); the target's count breaks it: 40 > 10
    assert retention_topk(TARGET, REFERENCE, 3)[0] == [0, 1, 2]


def test_retention_ties_break_by_target_count_then_id():
    assert retention_topk({0: [1, 1, 1, 1]}, {0: [1, 1, 1, 1]}, 2) == {0: [0, 1]}
    assert retention_topk({0: [1, 3, 3, 1]}, {0: [1, 3, 3, 1]}, 1) == {0: [1]}
    # a layer the target never reached: every target share is 0, so the reference's least-used experts win
    assert retention_topk({0: [0, 0, 0, 0]}, {0: [3, 1, 0, 0]}, 2) == {0: [2, 3]}


def test_a_uniform_reference_leaves_the_layer_top_k():
    counts = {0: [50, 10, 10, 30, 0, 0, 5, 5], 3: [1, 2, 3, 4, 5, 6, 7, 100]}
    uniform = {0: [7] * 8, 3: [1] * 8}
    for k in range(1, 9):
        assert retention_topk(counts, uniform, k) == layer_topk(counts, k)


def test_retention_refuses_mismatched_references():
    with pytest.raises(HelloraError, match=r"reference profile: MoE layers \[0\] differ"):
        retention_topk(TARGET, {0: REFERENCE[0]}, 2)
    with pytest.raises(HelloraError, match="layer 1 has 3 experts, the target's has 4"):
        retention_topk(TARGET, {0: REFERENCE[0], 1: [1, 2, 3]}, 2)
    with pytest.raises(HelloraError, match="k: number of hot experts"):
        retention_topk(TARGET, REFERENCE, 5)
    with pytest.raises(HelloraError, match="finite numbers"):
        retention_topk(TARGET, {0: REFERENCE[0], 1: [1, 2, float("nan"), 3]}, 2)


def test_select_experts_needs_the_reference_exactly_for_retention():
    assert needs_reference("retention") and not needs_reference(Strategy.LAYER)
    assert select_experts(TARGET, Strategy.RETENTION, 2, reference=REFERENCE) == {0: [1, 2], 1: [0, 1]}
    with pytest.raises(HelloraError, match="selection.reference: strategy 'retention' needs a reference"):
        select_experts(TARGET, "retention", 2)
    with pytest.raises(HelloraError, match="only strategy retention reads a reference profile, not 'layer'"):
        select_experts(TARGET, "layer", 2, reference=REFERENCE)


def profile(counts: dict, num_experts: int, **extra) -> ExpertProfile:
    layers = sorted(counts)
    rows = [counts[layer] for layer in layers]
    return ExpertProfile(layers=layers, counts=rows, mass=[[float(c) for c in row] for row in rows],
                         tokens=[sum(row) // 2 for row in rows], num_experts=num_experts, top_k=2, **extra)


def test_profile_select_checks_the_reference_and_records_it():
    target = profile(TARGET, 4, model_id="m", fingerprint="f1", source={"task": "target"})
    reference = profile(REFERENCE, 4, model_id="m", fingerprint="f1", source={"task": "others"})
    placement = target.select("retention", 2, reference=reference)
    assert placement.experts == {0: [1, 2], 1: [0, 1]} and placement.strategy is Strategy.RETENTION
    assert placement.source["reference"]["task"] == "others" and placement.k == 2
    with pytest.raises(HelloraError, match="reference profile: 1 MoE layers"):
        target.select("retention", 2, reference=profile({0: REFERENCE[0]}, 4))
    with pytest.raises(HelloraError, match="fingerprint 'f2' differs"):
        target.select("retention", 2, reference=profile(REFERENCE, 4, model_id="m", fingerprint="f2"))
    with pytest.raises(HelloraError, match="model_id 'other' differs"):
        target.select("retention", 2, reference=profile(REFERENCE, 4, model_id="other"))


def test_recipes_name_the_missing_or_stray_reference():
    assert SelectionConfig(strategy="retention", reference="r.json").reference == "r.json"
    with pytest.raises(HelloraError, match="selection.strategy: 'retention' ranks experts against a reference"):
        SelectionConfig(strategy="retention")
    with pytest.raises(HelloraError, match="selection.reference: only strategy retention reads"):
        SelectionConfig(strategy="layer", reference="r.json")
    with pytest.raises(HelloraError, match="recipe r.yaml line 3: selection.strategy: 'retention'"):
        config_from_dict({"selection": {"strategy": "retention"}}, sources={"selection.strategy": "recipe r.yaml line 3"})


def write_profile(path, counts: dict, num_experts: int):
    path.write_text(json.dumps(profile(counts, num_experts).to_dict()))
    return str(path)


def test_cli_select_and_flops_with_retention(tmp_path, capsys):
    target = write_profile(tmp_path / "t.json", TARGET, 4)
    other = write_profile(tmp_path / "r.json", REFERENCE, 4)
    out = tmp_path / "placement.json"
    assert main(["select", "--strategy", "retention", "--profile", target, "--reference", other, "--k", "2",
                 "--out", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert saved["strategy"] == "retention" and saved["experts"] == {"0": [1, 2], "1": [0, 1]}

    for args, words in ((["--strategy", "retention"], ["--reference PATH"]),
                        (["--strategy", "layer", "--reference", other], ["--reference", "not 'layer'"]),
                        (["--strategy", "retention", "--reference", str(tmp_path / "nope.json")], ["not found"])):
        capsys.readouterr()
        assert main(["select", "--profile", target, *args, "--out", str(tmp_path / "x.json")]) != 0
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and all(w in err for w in words), err
        assert not (tmp_path / "x.json").exists()

    # flops on the mixtral preset (32 MoE layers x 8 experts, top-2): the target routes mostly to experts 0-1,
    # which the other skills use as much; retention picks experts 2-3, used less by the target: fewer FLOPs.
    layers = range(32)
    t_counts = {layer: [40, 30, 10, 10, 4, 3, 2, 1] for layer in layers}
    r_counts = {layer: [40, 30, 1, 1, 10, 10, 4, 4] for layer in layers}
    t_path, r_path = write_profile(tmp_path / "t8.json", t_counts, 8), write_profile(tmp_path / "r8.json", r_counts, 8)
    capsys.readouterr()
    flops = {}
    for strategy, extra in (("layer", []), ("retention", ["--reference", r_path])):
        assert main(["flops", "--model", "mixtral-8x7b", "--methods", "hellora", "--k", "2", "--profile", t_path,
                     "--strategy", strategy, *extra, "--json"]) == 0
        flops[strategy] = json.loads(capsys.readouterr().out)["hellora"]["by_role"]
    # only the hot experts' share of the routing differs: experts {0, 1} carry 70 of 100 assignments, {2, 3} 20
    assert flops["retention"]["experts"] / flops["layer"]["experts"] == pytest.approx(20 / 70)
    assert flops["retention"]["router"] == flops["layer"]["router"]
    assert main(["flops", "--model", "mixtral-8x7b", "--strategy", "retention", "--profile", t_path]) != 0
    assert "--reference" in capsys.readouterr().err
