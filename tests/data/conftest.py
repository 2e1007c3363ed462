"""Shared fixtures for the data tests: where the real datasets live, and the tiny tokenizers.

The real files are read in place from the project's sibling `shared/datasets/` folder (never copied into the
repository); set HELLORA_DATASETS to point elsewhere. Tests that need them are skipped when the folder is absent.
"""

import os
from pathlib import Path

import pytest

from hellora.data.tiny_tokenizer import build_tiny_tokenizer

_DEFAULT = Path(__file__).resolve().parents[2].parent / "shared" / "datasets"
DATASETS = Path(os.environ.get("HELLORA_DATASETS", _DEFAULT))


@pytest.fixture(scope="session")
def datasets_dir() -> Path:
    if not (DATASETS / "gsm8k" / "train.jsonl").is_file():
        pytest.skip(f"shared datasets not found at {DATASETS} (set HELLORA_DATASETS)")
    return DATASETS


@pytest.fixture(scope="session")
def tiny_tok():
    """Character tokenizer that does not insert BOS by itself."""
    return build_tiny_tokenizer()


@pytest.fixture(scope="session")
def tiny_tok_bos():
    """Character tokenizer that prepends BOS on encode, like Llama-style tokenizers."""
    return build_tiny_tokenizer(add_bos=True)
