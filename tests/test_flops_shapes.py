"""`hellora flops` on a preset counts from the preset's shapes without torch (`flops.shape_flops`); the reference
is the count of adapters really attached to the meta-device model (`method_flops_on_meta`), for every method,
both conventions, uniform and measured routing, on reduced configs of each family and on the full presets."""

import json
import random
import subprocess
import sys

import pytest

from hellora.adapters.config import AdapterConfig
from hellora.flops import HotSelection, flops_report, method_flops_from_shapes, method_flops_on_meta
from hellora.models.presets import PRESETS
from hellora.models.shapes import model_shapes
from hellora.profiling import ExpertProfile
from tests.adapters.test_shape_count import REDUCED

CASES = [(preset, i) for preset, configs in REDUCED.items() for i in range(len(configs))]


def skewed_profile(shapes, seed: int = 0) -> ExpertProfile:
    """Routing counts with a different skew per layer (and an unused expert), for every MoE layer of `shapes`."""
    rng = random.Random(seed)
    layers = [i for i, layer in enumerate(shapes.layers) if layer.is_moe]
    counts = [[rng.randint(0, 50) ** 2 for _ in range(shapes.num_experts)] for _ in layers]
    for row in counts:
        row[-1] = 0
    tokens = [max(1, sum(row) // shapes.top_k) for row in counts]
    return ExpertProfile(layers=layers, counts=counts, mass=[], tokens=tokens, num_experts=shapes.num_experts,
                         top_k=shapes.top_k)


def same(a: dict, b: dict) -> bool:
    return (a["forward_per_token"] == pytest.approx(b["forward_per_token"], rel=1e-12)
            and a["by_role"].keys() == b["by_role"].keys()
            and all(a["by_role"][r] == pytest.approx(b["by_role"][r], rel=1e-12) for r in a["by_role"]))


@pytest.mark.parametrize("preset, which", CASES, ids=[f"{p}-{i}" for p, i in CASES])
def test_shapes_count_as_the_adapters_on_the_meta_model(preset, which):
    overrides = REDUCED[preset][which]
    shapes = model_shapes({**PRESETS[preset].config, **overrides})
    for profile in (None, skewed_profile(shapes)):
        for method, paper in (("lora", False), ("hellora", False), ("loramoe", False), ("lora", True),
                              ("hellora", True)):
            config = AdapterConfig(method=method, r=4 if method == "loramoe" else 8, loramoe_experts=3)
            hot = HotSelection(k=2, profile=profile, strategy="layer")
            fast, k_fast = method_flops_from_shapes(preset, shapes, config, hot, paper=paper)
            meta, k_meta = method_flops_on_meta(preset, config, hot, paper=paper, overrides=overrides)
            assert k_fast == k_meta and same(fast, meta), (method, paper, profile is not None)


@pytest.mark.slow
@pytest.mark.parametrize("preset", list(PRESETS))
def test_full_presets_count_as_the_meta_model(preset):
    shapes = model_shapes(PRESETS[preset].config)
    for profile in (None, skewed_profile(shapes, seed=1)):
        for method, paper in (("lora", False), ("hellora", False), ("hellora", True)):
            config = AdapterConfig(method=method)
            hot = HotSelection(k=None, profile=profile, strategy="layer")
            fast, _ = method_flops_from_shapes(preset, shapes, config, hot, paper=paper)
            assert same(fast, method_flops_on_meta(preset, config, hot, paper=paper)[0]), (method, paper)


def test_papers_table_3_from_the_shapes():
    report = flops_report("deepseek-moe-16b", convention="paper")
    assert round(report["rows"]["lora"]["forward_per_token"] / 1e6, 2) == 170.77  # the paper's cell
    assert round(flops_report("olmoe-1b-7b")["rows"]["lora"]["forward_per_token"] / 1e6, 2) == 94.44


def test_flops_on_a_preset_imports_neither_torch_nor_transformers(tmp_path):
    shapes = model_shapes(PRESETS["olmoe-1b-7b"].config)
    path = tmp_path / "profile.json"
    skewed_profile(shapes).save(path)
    code = ("import json, sys\nfrom hellora.cli import main\n"
            f"main(['flops', '--model', 'olmoe-1b-7b', '--profile', {str(path)!r}, '--json'])\n"
            "print(json.dumps(sorted(m for m in ('torch', 'transformers', 'peft') if m in sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    rows, loaded = out.rsplit("\n", 2)[0], json.loads(out.rsplit("\n", 2)[1])
    assert loaded == []
    assert json.loads(rows)["hellora"]["forward_per_token"] < json.loads(rows)["lora"]["forward_per_token"]
