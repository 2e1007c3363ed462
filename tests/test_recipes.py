"""Every shipped recipe parses, validates and resolves to the paper's hyper-parameters."""

from pathlib import Path

import pytest
import yaml

from hellora.config import PAPER_SCHEDULE, load_run_config

# recipes/paper and the smoke sweep hold sweeps (tests/test_sweep.py), recipes/proxy study configs (test_proxy.py)
RECIPES = sorted(p for p in Path(__file__).resolve().parents[1].joinpath("recipes").rglob("*.yaml")
                 if p.parent.name not in ("paper", "proxy", "cpu") and "runs" not in yaml.safe_load(p.read_text()))
# recipes/cpu run on the demo's model (tests/cli/test_cpu_path.py runs them)
CPU_RECIPES = sorted(Path(__file__).resolve().parents[1].joinpath("recipes", "cpu").glob("*.yaml"))


def test_the_grid_is_complete():
    grid = [p for p in RECIPES if p.parent.name in ("olmoe-1b-7b", "mixtral-8x7b", "deepseek-moe-16b")]
    assert len(grid) >= 3 * 3 * 2


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_recipe_resolves(path):
    config = load_run_config(path).resolved()
    lr, _, epochs = PAPER_SCHEDULE[config.data.task]
    assert config.adapter.r == 32 and config.adapter.alpha == 64
    if path.parent.name != "smoke":
        assert config.train.learning_rate == lr and config.train.epochs == epochs and config.train.batch_size == 128
    if config.adapter.method == "hellora":
        expected_k = {"olmoe-1b-7b": 8, "mixtral-8x7b": 2, "deepseek-moe-16b": 12}.get(path.parent.name)
        assert expected_k is None or config.selection.k == expected_k


def test_overrides_reach_into_mapping_fields(tmp_path):
    path = sorted(p for p in RECIPES if p.parent.name == "smoke")[0]
    config = load_run_config(path, ["model.overrides.hidden_size=64", "eval.data.gsm8k=x.jsonl", "adapter.r=8"])
    assert config.model.overrides == {"num_hidden_layers": 4, "hidden_size": 64}
    assert config.eval.data["gsm8k"] == "x.jsonl" and config.adapter.r == 8
    assert load_run_config(path).model.overrides == {"num_hidden_layers": 4}  # the recipe itself is untouched


@pytest.mark.parametrize("path", CPU_RECIPES, ids=lambda p: p.name)
def test_cpu_recipes_resolve_on_the_demo_model(path):
    config = load_run_config(path).resolved()
    assert config.model.name == "hellora-demo/base-model" and config.data.task == "skill"
    assert config.train.max_steps <= 60 and config.adapter.method in ("hellora", "lora")


def test_the_gpu_smoke_recipe_says_it_is_gpu_sized():
    path = Path(__file__).resolve().parents[1] / "recipes" / "smoke" / "olmoe-reduced-gsm8k.yaml"
    assert path.read_text().splitlines()[0].startswith("# GPU-sized")
