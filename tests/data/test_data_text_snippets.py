"""Real-text snippets for the proxy study's pretraining mix, from the shared datasets."""

import pytest

from hellora.data import build_tiny_tokenizer
from hellora.data.text_snippets import text_snippets
from hellora.utils.errors import HelloraError
from tests.conftest import DATASETS, GSM8K

CODE = DATASETS / "codealpaca" / "code_alpaca_2k.json"


def test_snippets_are_deterministic_windows_of_each_file_in_turn():
    a = text_snippets([GSM8K, CODE], 40, seed=3)
    assert a == text_snippets([GSM8K, CODE], 40, seed=3) and a != text_snippets([GSM8K, CODE], 40, seed=4)
    vocab = set(build_tiny_tokenizer().get_vocab())
    for e in a:
        text = e["prompt"] + e["answer"]
        assert e["skill"] == "text" and 0 < len(e["prompt"]) <= 20 and len(text.rstrip()) <= 60 and e["answer"]
        assert set(text) <= vocab  # nothing the character tokenizer would map to <unk>
    assert any("def " in e["prompt"] + e["answer"] or "(" in e["answer"] for e in a[1::2])  # code, every other


def test_bad_requests_are_named(tmp_path):
    with pytest.raises(HelloraError, match="needs at least one file"):
        text_snippets([], 3)
    short = tmp_path / "short.jsonl"
    short.write_text('{"q": "too short"}\n')
    with pytest.raises(HelloraError, match="short.jsonl has no record"):
        text_snippets([short], 3)
