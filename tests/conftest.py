"""Shared fixtures: tiny in-process MoE models of every family (random init, no downloads)."""

import os
from pathlib import Path

import pytest
import torch

if not torch.cuda.is_available():
    # Before anything imports triton: its kernels then run on CPU tensors in Triton's interpreter, so the CPU
    # suite checks the same Triton kernels a GPU compiles (tests/kernels). Nothing else here uses triton.
    os.environ.setdefault("TRITON_INTERPRET", "1")

try:
    import triton  # noqa: F401

    HAS_TRITON = True
except ImportError:  # e.g. macOS: the torch backend serves everything
    HAS_TRITON = False
# Triton kernels can run on CPU tensors here (its interpreter); on a GPU machine tests/gpu runs them compiled
TRITON_ON_CPU = HAS_TRITON and os.environ.get("TRITON_INTERPRET") == "1"

from hellora.data import build_tiny_tokenizer
from hellora.models.tiny import tiny_model

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

FUSED_FAMILIES = ["olmoe", "mixtral", "qwen2_moe", "qwen3_moe", "deepseek_v2", "deepseek_v3", "granitemoe",
                  "granitemoeshared", "gpt_oss"]


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(1234)


def pytest_configure(config):
    config.addinivalue_line("markers", "full_datasets: needs the full datasets of ../shared/datasets "
                            "(or $HELLORA_DATASETS), not the small fixtures of tests/assets")


def pytest_collection_modifyitems(config, items):
    if not HAS_FULL_DATASETS:
        no_data = pytest.mark.skip(reason=f"needs the full datasets, not found at {FULL_DATASETS_DIR} "
                                          "(set HELLORA_DATASETS); tests/assets holds only small fixtures")
        for item in items:
            if "full_datasets" in item.keywords:
                item.add_marker(no_data)
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


# The real datasets live in the project's sibling shared/datasets/ folder (read in place, never copied);
# HELLORA_DATASETS points elsewhere. Without them (a fresh clone) the tests read the small fixtures in
# tests/assets/datasets/ (same layout and formats, a few dozen rows each), and tests marked `full_datasets`
# (row counts, byte-exact known records) are skipped with the reason.
ASSET_DATASETS = Path(__file__).resolve().parent / "assets" / "datasets"
FULL_DATASETS_DIR = Path(os.environ.get("HELLORA_DATASETS",
                                        Path(__file__).resolve().parents[1].parent / "shared" / "datasets"))
HAS_FULL_DATASETS = (FULL_DATASETS_DIR / "gsm8k" / "train.jsonl").is_file()
DATASETS = FULL_DATASETS_DIR if HAS_FULL_DATASETS else ASSET_DATASETS
GSM8K = str(DATASETS / "gsm8k" / "train.jsonl")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny OLMoE saved with hellora's character tokenizer, loadable by path like a hub model."""
    path = tmp_path_factory.mktemp("models") / "olmoe"
    tiny_model("olmoe", vocab_size=104).save_pretrained(path)
    build_tiny_tokenizer().save_pretrained(path)
    return path


def recipe_text(model_dir, out_dir, **sections) -> str:
    base = {
        "model": f"{{name: {model_dir}, dtype: float32}}",
        "data": f"{{task: gsm8k, train: {GSM8K}, limit: 48, max_length: 96, max_prompt_length: 64}}",
        "profile": "{mode: warmup, fraction: 0.34}",
        "adapter": "{method: hellora, r: 4, alpha: 8}",
        "train": "{batch_size: 8, micro_batch_size: 4, max_steps: 4, save_steps: 2, logging_steps: 1, "
                 "learning_rate: 0.002}",
    }
    base.update(sections)
    return "\n".join(f"{k}: {v}" for k, v in base.items()) + f"\noutput_dir: {out_dir}\n"


@pytest.fixture
def write_recipe(tiny_model_dir, tmp_path):
    def write(name="recipe.yaml", out="run", **sections):
        path = tmp_path / name
        path.write_text(recipe_text(tiny_model_dir, tmp_path / out, **sections))
        return path

    return write
