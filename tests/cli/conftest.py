"""A stand-in for `hellora demo`'s output folder, built in seconds: a small skill MoE (untrained) saved as a
transformers folder with the character tokenizer, and skill data as JSONL, at the paths recipes/cpu/ expect."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CPU_RECIPES = REPO / "recipes" / "cpu"


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory):
    """A folder holding hellora-demo/{base-model,data} like `hellora demo` writes (cwd for the recipes)."""
    from hellora.data import build_tiny_tokenizer
    from hellora.data.skills import generate_skill_examples
    from hellora.demo.run import save_base_model, save_skill_data
    from hellora.study.skill_moe import build_skill_moe

    home = tmp_path_factory.mktemp("home")
    tokenizer = build_tiny_tokenizer()
    model = build_skill_moe(len(tokenizer), hidden_size=32, layers=2, experts=4, top_k=2, seed=0)
    model.config.output_router_logits = False
    save_base_model(model, tokenizer, home / "hellora-demo" / "base-model")
    save_skill_data(home / "hellora-demo" / "data",
                    {"sort-train": generate_skill_examples("sort", 64, seed=3, split="train"),
                     "sort-test": generate_skill_examples("sort", 8, seed=1, split="test")})
    return home


# Small-step overrides for the recipes (the recipes themselves run ~1 minute each on the real demo model).
FAST = ["train.max_steps=2", "train.batch_size=8", "train.micro_batch_size=8", "train.save_steps=1"]
