"""AdapterConfig: choices parsed into `hellora.choices` members, the `placement` -> `targets` rename read with a warning
from code, recipes and saved adapters, and `router_adapted` recorded as a field of what was attached."""

import json

import pytest
import yaml

from hellora.adapters import AdapterConfig, attach_adapters, load_adapter, save_adapter
from hellora.config import dump_config, load_run_config
from hellora.models.tiny import tiny_model
from hellora.utils.errors import HelloraError
from hellora.choices import Method, Targets, Variant
from tests.helpers import first_k_placement


def test_choices_become_members_and_serialise_as_plain_strings():
    config = AdapterConfig(method="lora", variant="dora", targets="gate")
    assert config.method is Method.LORA and config.variant is Variant.DORA and config.targets is Targets.GATE
    data = config.to_dict()
    assert type(data["method"]) is str and data["targets"] == "gate" and "placement" not in data
    assert "extra" not in data
    assert AdapterConfig.from_dict(data) == config
    assert yaml.safe_dump({"method": config.method}) == "method: lora\n"


@pytest.mark.parametrize("field, value", [("method", "lorra"), ("variant", "dora2"), ("targets", "router")])
def test_an_unknown_choice_names_its_field(field, value):
    with pytest.raises(HelloraError, match=f"adapter.{field}: unknown value '{value}'; choose one of"):
        AdapterConfig(**{field: value})


def test_the_old_placement_keyword_still_works_with_a_warning():
    with pytest.warns(FutureWarning, match="placement=.*deprecated.*targets"):
        config = AdapterConfig(placement="pure")
    assert config.targets is Targets.PURE
    with pytest.warns(FutureWarning, match="read .targets"):
        assert config.placement is Targets.PURE
    assert AdapterConfig(placement="gate", r=4) == AdapterConfig(targets="gate", r=4)


def test_a_saved_record_with_the_old_keys_loads_with_a_warning_naming_it():
    data = AdapterConfig(targets="gate").to_dict()
    data["placement"] = data.pop("targets")
    data["extra"] = {}
    with pytest.warns(FutureWarning, match="adapter x: key 'placement' is deprecated; rename it 'targets'"):
        config = AdapterConfig.from_dict(data, where="adapter x")
    assert config.targets is Targets.GATE
    data["targets"] = "all"
    with pytest.raises(HelloraError, match="both 'placement' and its new name 'targets'"):
        AdapterConfig.from_dict(data)


def test_a_recipe_with_adapter_placement_warns_naming_the_file_and_dumps_targets(tmp_path):
    recipe = tmp_path / "old.yaml"
    recipe.write_text("adapter: {method: hellora, placement: pure}\n")
    with pytest.warns(FutureWarning, match=f"recipe {recipe} line 1: adapter: key 'placement' is deprecated"):
        config = load_run_config(recipe, ["adapter.variant=dora"])
    assert config.adapter.targets is Targets.PURE and config.adapter.variant is Variant.DORA
    dumped = yaml.safe_load(dump_config(config))
    assert dumped["adapter"]["targets"] == "pure" and "placement" not in dumped["adapter"]
    with pytest.raises(HelloraError, match="adapter.targets: unknown value 'everything'"):
        load_run_config(recipe, ["adapter.placement=everything"])


@pytest.mark.parametrize("targets, routed", [("pure", False), ("gate", True), ("all", True)])
def test_router_adapted_is_a_field_saved_beside_a_clean_placement(targets, routed, tmp_path):
    model = tiny_model("olmoe")
    attach_adapters(model, AdapterConfig(targets=targets, r=4, alpha=8), first_k_placement(model))
    assert model.hellora_adapter.router_adapted is routed
    assert not any(key.startswith("_") for key in model.hellora_adapter.placement)
    save_adapter(model, tmp_path / "adapter")
    record = json.loads((tmp_path / "adapter" / "hellora_adapter.json").read_text())
    assert record["router_adapted"] is routed and record["placement"]["strategy"] == "manual"
    assert record["adapter"]["targets"] == targets
    assert load_adapter(tiny_model("olmoe"), tmp_path / "adapter").hellora_adapter.router_adapted is routed
