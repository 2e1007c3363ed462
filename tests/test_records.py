"""Files hellora reads back are untrusted input (issues 22.4, 26.4): profiles, placements and adapter records.

Property-based (hypothesis): whatever JSON value lands in a field, the loader either returns a record whose fields
have the promised types and ranges, or raises one `HelloraError` line, never another exception. Then the
commands: `select`, `flops` and `train` refuse negative/NaN counts and non-integer expert ids, before any folder.
"""

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hellora.adapters.io import check_adapter_record
from hellora.cli import main
from hellora.placement import HotExpertPlacement
from hellora.profiling.profile import ExpertProfile, check_profile_record
from hellora.utils.errors import HelloraError

JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 20), st.floats(allow_nan=True, allow_infinity=True),
                         st.text(max_size=4))
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                                  st.dictionaries(st.text(max_size=3), inner, max_size=3)),
                           max_leaves=6)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _placement(**changes) -> dict:
    data = {"format": "hellora.placement/1", "strategy": "layer", "k": 2, "num_experts": 8, "model_id": "m",
            "fingerprint": "f", "source": {}, "experts": {"0": [1, 5], "1": [0, 7]}}
    return {**data, **changes}


def _profile(**changes) -> dict:
    data = ExpertProfile(layers=[0, 1], counts=[[5, 1, 0, 2], [0, 3, 3, 1]], mass=[[1.0, 0.5, 0.0, 1.0]] * 2,
                         tokens=[4, 4], num_experts=4, top_k=2, fingerprint="f").to_dict()
    return {**data, **changes}


def _one_line(error: HelloraError) -> None:
    assert "\n" not in str(error) and str(error)


# --- placements ---

@FAST
@given(field=st.sampled_from(["num_experts", "k", "strategy", "model_id", "fingerprint", "source", "experts"]),
       value=JSON_VALUES)
def test_any_value_in_a_placement_field_loads_checked_or_is_refused_in_one_line(field, value):
    try:
        placement = HotExpertPlacement.from_dict(_placement(**{field: value}), where="placement p.json")
    except HelloraError as e:
        _one_line(e)
        return
    for layer, ids in placement.experts.items():
        assert type(layer) is int and layer >= 0
        assert all(type(e) is int and 0 <= e < placement.num_experts for e in ids)
    assert placement.k is None or (type(placement.k) is int and placement.k >= 1)


@FAST
@given(bad=st.one_of(st.floats(allow_nan=True).filter(lambda x: not float(x).is_integer() or math.isnan(x)),
                     st.booleans(), st.text(max_size=3), st.none(), st.integers(8, 100), st.integers(-100, -1),
                     st.just(2.0)))
def test_expert_ids_must_be_integers_in_range(bad):
    with pytest.raises(HelloraError, match="experts of layer 0") as e:
        HotExpertPlacement.from_dict(_placement(experts={"0": [1, bad]}))
    _one_line(e.value)


@pytest.mark.parametrize("key", ["-1", "1.0", "x", " 1", "", "١"])
def test_layer_keys_must_be_whole_numbers(key):
    with pytest.raises(HelloraError, match="not a layer index"):
        HotExpertPlacement.from_dict(_placement(experts={key: [1]}))


def test_a_placement_is_checked_against_the_model():
    placement = HotExpertPlacement.from_dict(_placement())
    placement.check_fits([0, 1], 8, "f", "p")
    with pytest.raises(HelloraError, match="layer 1 is not an MoE layer"):
        placement.check_fits([0, 2], 8, "f", "p")
    with pytest.raises(HelloraError, match="another model"):
        placement.check_fits([0, 1], 8, "g", "p")
    with pytest.raises(HelloraError, match="num_experts"):
        placement.check_fits([0, 1], 16, "f", "p")


# --- profiles ---

@FAST
@given(field=st.sampled_from(["layers", "counts", "mass", "tokens", "num_experts", "top_k", "mode", "model_id",
                              "fingerprint", "source", "meta"]), value=JSON_VALUES)
def test_any_value_in_a_profile_field_loads_checked_or_is_refused_in_one_line(field, value):
    try:
        data = check_profile_record(_profile(**{field: value}), "profile p.json")
        profile = ExpertProfile.from_dict(data)
    except HelloraError as e:
        _one_line(e)
        return
    assert all(type(layer) is int and layer >= 0 for layer in profile.layers)
    for row in profile.counts:
        assert len(row) == profile.num_experts and all(math.isfinite(c) and c >= 0 for c in row)
    assert all(type(t) is int and t >= 0 for t in profile.tokens)
    assert 1 <= profile.top_k <= profile.num_experts


@FAST
@given(count=st.one_of(st.floats(max_value=-1e-9), st.just(math.nan), st.just(math.inf), st.integers(max_value=-1),
                       st.booleans(), st.text(max_size=2)), row=st.integers(0, 1), col=st.integers(0, 3))
def test_negative_nan_and_non_numeric_counts_are_refused(count, row, col):
    counts = [[5, 1, 0, 2], [0, 3, 3, 1]]
    counts[row][col] = count
    with pytest.raises(HelloraError, match=rf"field 'counts'\[{row}\]\[{col}\]"):
        check_profile_record(_profile(counts=counts), "profile p.json")


@pytest.mark.parametrize("tokens", [[-1, 4], [4.5, 4], [True, 4], [4]])
def test_token_totals_are_integers_per_layer(tokens):
    with pytest.raises(HelloraError, match="tokens"):
        check_profile_record(_profile(tokens=tokens), "profile p.json")


# --- adapter records ---

def _adapter_record(**changes) -> dict:
    data = {"format": "hellora.adapter/1", "base_model": "tiny", "model_type": "olmoe", "fingerprint": "f",
            "adapter": {"method": "hellora", "r": 4, "alpha": 8}, "experts": {"0": [1, 5], "1": [1, 5]},
            "router_adapted": False, "placement": {"strategy": "layer"}, "trainable_parameters": 10,
            "model": {"name": "tiny", "overrides": {}, "tokenizer": None, "trust_remote_code": False}}
    return {**data, **changes}


@FAST
@given(field=st.sampled_from(["format", "fingerprint", "experts", "adapter", "base_model", "router_adapted",
                              "placement", "trainable_parameters", "model"]), value=JSON_VALUES)
def test_any_value_in_an_adapter_record_is_checked_or_refused_in_one_line(field, value):
    try:
        record = check_adapter_record(_adapter_record(**{field: value}), "a/hellora_adapter.json")
    except HelloraError as e:
        _one_line(e)
        return
    for key, ids in record["experts"].items():
        assert key.isdigit() and all(type(e) is int and e >= 0 for e in ids)
    trust = (record.get("model") or {}).get("trust_remote_code")
    assert trust is None or type(trust) is bool


@pytest.mark.parametrize("experts", [{"zero": [1]}, {"0": [1.5]}, {"0": [True]}, {"0": "1,5"}, [1, 5]])
def test_bad_expert_keys_in_an_adapter_get_one_line_not_an_unexpected_error(tmp_path, capsys, experts):
    from hellora.adapters import AdapterConfig, attach_adapters
    from hellora.adapters.io import save_adapter
    from hellora.models.tiny import tiny_model
    from tests.helpers import first_k_placement

    model = tiny_model("olmoe")
    attach_adapters(model, AdapterConfig(init="random", r=2, alpha=4), first_k_placement(model, (1, 5)))
    save_adapter(model, tmp_path / "adapter", base_model="tiny")
    path = tmp_path / "adapter" / "hellora_adapter.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "experts": experts}))
    assert main(["export", "--adapter", str(tmp_path / "adapter"), "--format", "peft", "--out",
                 str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "unexpected" not in err and "hellora_adapter.json" in err and "experts" in err, err


def test_a_lori_s_record_without_its_masks_is_not_exported_unmasked(tmp_path, capsys):
    """A tampered LoRI-S adapter (masks deleted from the weights) is refused, never exported as plain LoRA."""
    from safetensors.torch import load_file, save_file

    from hellora.adapters import AdapterConfig, attach_adapters
    from hellora.adapters.io import WEIGHTS, save_adapter
    from hellora.models.tiny import tiny_model
    from tests.helpers import first_k_placement

    from hellora.adapters.io import read_lori_d

    lori_d = tiny_model("olmoe")
    attach_adapters(lori_d, AdapterConfig(init="random", r=2, alpha=4, variant="lori_d"),
                    first_k_placement(lori_d, (1, 5)))
    save_adapter(lori_d, tmp_path / "lori_d", base_model="tiny")
    model = tiny_model("olmoe")
    model.save_pretrained(tmp_path / "base")
    attach_adapters(model, AdapterConfig(init="random", r=2, alpha=4, variant="lori_s",
                                         lori_from=str(tmp_path / "lori_d")),
                    first_k_placement(model, (1, 5)), lori_d=read_lori_d(tmp_path / "lori_d"))
    save_adapter(model, tmp_path / "adapter", base_model=str(tmp_path / "base"))
    weights = tmp_path / "adapter" / WEIGHTS
    tensors = load_file(str(weights))
    masks = [n for n in tensors if n.endswith("_mask")]
    assert masks  # the honest adapter holds them
    assert main(["export", "--adapter", str(tmp_path / "adapter"), "--format", "peft", "--out",
                 str(tmp_path / "honest")]) == 0  # the honest one exports
    save_file({n: t for n, t in tensors.items() if n not in masks}, str(weights))
    assert main(["export", "--adapter", str(tmp_path / "adapter"), "--format", "peft", "--out",
                 str(tmp_path / "out")]) == 2
    assert "missing" in capsys.readouterr().err and not (tmp_path / "out").exists()


# --- the commands that read them ---

def _write(path, data) -> str:
    path.write_text(json.dumps(data))  # json writes NaN as the literal NaN, which Python's reader accepts
    return str(path)


@pytest.mark.parametrize("counts", [[[5, -1, 0, 2], [0, 3, 3, 1]], [[5, math.nan, 0, 2], [0, 3, 3, 1]]])
def test_select_and_flops_refuse_negative_and_nan_counts(tmp_path, capsys, counts):
    profile = _write(tmp_path / "p.json", _profile(counts=counts))
    assert main(["select", "--profile", profile, "--out", str(tmp_path / "placement.json")]) == 2
    assert "field 'counts'" in capsys.readouterr().err and not (tmp_path / "placement.json").exists()
    assert main(["flops", "--model", "olmoe-1b-7b", "--profile", profile]) == 2
    assert "field 'counts'" in capsys.readouterr().err


@pytest.mark.parametrize("experts,needle", [({"0": [2.5]}, "experts of layer 0"), ({"0": [True]}, "experts of layer 0"),
                                            ({"7": [1]}, "layer 7 is not an MoE layer")])
def test_train_refuses_a_bad_placement_before_any_folder_or_lock(write_recipe, tmp_path, capsys, experts, needle):
    placement = _write(tmp_path / "placement.json", _placement(experts=experts, fingerprint=None))
    recipe = write_recipe(out="runs/new/run")
    assert main(["train", str(recipe), f"selection.path={placement}", "--no-progress"]) == 2
    assert needle in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # no run folder, no lock, not even the parents made for the lock


def test_train_refuses_a_profile_of_another_model_before_any_folder(write_recipe, tmp_path, capsys):
    profile = _write(tmp_path / "profile.json", _profile(num_experts=4, fingerprint="0" * 16))
    recipe = write_recipe()
    assert main(["train", str(recipe), f"profile.path={profile}", "--no-progress"]) == 2
    assert "another model" in capsys.readouterr().err
    assert not (tmp_path / "run").exists() and not (tmp_path / ".run.lock").exists()
    nan = _write(tmp_path / "nan.json", _profile(counts=[[math.nan] * 4] * 2))
    assert main(["train", str(recipe), f"profile.path={nan}", "--no-progress"]) == 2
    assert "field 'counts'" in capsys.readouterr().err and not (tmp_path / "run").exists()


# --- study configs ---

def _study_fields() -> list[str]:
    from dataclasses import fields

    from hellora.study.config import StudyConfig

    return [f.name for f in fields(StudyConfig)]


@FAST
@given(field=st.sampled_from(_study_fields()), value=JSON_VALUES)
def test_any_value_in_a_study_config_is_accepted_checked_or_refused_in_one_line(field, value):
    from hellora.study.config import StudyConfig

    try:
        cfg = StudyConfig(**{field: value})
    except HelloraError as e:
        _one_line(e)
        return
    assert all(type(s) is int for s in cfg.base_seeds + cfg.ft_seeds)
    assert all(math.isfinite(v) and v > 0 for v in cfg.lr_grid + cfg.fft_lr_grid)
    assert 1 <= cfg.top_k <= cfg.experts and math.isfinite(cfg.pretrain_lr)


def test_a_study_file_that_is_not_a_mapping_is_refused(tmp_path):
    from hellora.study.config import StudyConfig

    path = tmp_path / "study.yaml"
    path.write_text("- a\n- b\n")
    with pytest.raises(HelloraError, match="expected key: value pairs"):
        StudyConfig.from_yaml(path)
