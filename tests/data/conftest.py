"""Shared fixtures for the data tests: where the datasets live, and the tiny tokenizers.

`datasets_dir` is the real datasets folder when it is there (the project's sibling `shared/datasets/`, or
HELLORA_DATASETS), else the small fixtures of `tests/assets/datasets/`, so these tests also run in a fresh clone.
Tests that need the full files carry `@pytest.mark.full_datasets` (skipped with a reason without them).
"""

import pytest

from hellora.data.tiny_tokenizer import build_tiny_tokenizer
from tests.conftest import DATASETS


@pytest.fixture(scope="session")
def datasets_dir():
    return DATASETS


@pytest.fixture(scope="session")
def tiny_tok():
    """Character tokenizer that does not insert BOS by itself."""
    return build_tiny_tokenizer()


@pytest.fixture(scope="session")
def tiny_tok_bos():
    """Character tokenizer that prepends BOS on encode, like Llama-style tokenizers."""
    return build_tiny_tokenizer(add_bos=True)
