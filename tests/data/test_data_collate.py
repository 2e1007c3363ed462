"""Padding a batch: values, sides, multiples, pass-through keys, and that padding never changes the loss."""

import pytest
import torch
import torch.nn.functional as F

from hellora.data.collate import PadCollator
from hellora.data.tiny_tokenizer import build_tiny_tokenizer
from hellora.data.tokenize import encode_example
from hellora.utils.errors import HelloraError

A = {"input_ids": [5, 6, 7], "attention_mask": [1, 1, 1], "labels": [-100, 6, 7]}
B = {"input_ids": [8, 9], "attention_mask": [1, 1], "labels": [-100, 9]}


def test_right_padding_values():
    batch = PadCollator(pad_token_id=0)([A, B])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 9, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [-100, 9, -100]]
    assert all(t.dtype == torch.long for t in batch.values())


def test_left_padding_values():
    batch = PadCollator(pad_token_id=0, padding_side="left")([A, B])
    assert batch["input_ids"].tolist() == [[5, 6, 7], [0, 8, 9]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [0, 1, 1]]
    assert batch["labels"].tolist() == [[-100, 6, 7], [-100, -100, 9]]


@pytest.mark.parametrize("lengths, multiple, width", [((3, 5), 8, 8), ((8, 2), 8, 8), ((9, 1), 8, 16), ((3, 2), None, 3)])
def test_pad_to_multiple_of(lengths, multiple, width):
    feats = [{"input_ids": [4] * n} for n in lengths]
    batch = PadCollator(pad_token_id=0, pad_to_multiple_of=multiple)(feats)
    assert batch["input_ids"].shape == (2, width)
    assert batch["attention_mask"].sum(dim=1).tolist() == list(lengths)


def test_generation_batch_without_labels_or_mask():
    batch = PadCollator(pad_token_id=0, padding_side="left")([{"input_ids": [3]}, {"input_ids": [4, 5]}])
    assert "labels" not in batch
    assert batch["attention_mask"].tolist() == [[0, 1], [1, 1]]


def test_other_keys_pass_through_as_lists():
    batch = PadCollator(pad_token_id=0)([{**A, "answer": "19"}, {**B, "answer": "7"}])
    assert batch["answer"] == ["19", "7"]


def test_for_tokenizer_uses_pad_or_falls_back_to_eos():
    tok = build_tiny_tokenizer()
    assert PadCollator.for_tokenizer(tok).pad_token_id == 0
    tok.pad_token = None
    assert PadCollator.for_tokenizer(tok, padding_side="left").pad_token_id == tok.eos_token_id == 2


def test_padding_does_not_change_the_loss(tiny_tok):
    """The same example alone and padded (either side) must give the same masked cross-entropy."""
    short = encode_example(tiny_tok, "1+1=", "2")
    long = encode_example(tiny_tok, "reverse abcdef ->", "fedcba")
    torch.manual_seed(0)
    table = torch.randn(len(tiny_tok), len(tiny_tok))  # a fixed "model": logits depend on the current token only

    def loss(batch, row):
        logits = table[batch["input_ids"][row]]
        return F.cross_entropy(logits[:-1], batch["labels"][row][1:], ignore_index=-100)

    alone = loss(PadCollator(0)([short]), 0)
    for side in ("right", "left"):
        padded = PadCollator(0, padding_side=side, pad_to_multiple_of=8)([long, short])
        assert torch.allclose(loss(padded, 1), alone)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"padding_side": "middle"}, r"padding_side must be 'left' or 'right', got 'middle'"),
        ({"pad_to_multiple_of": 0}, r"pad_to_multiple_of must be a positive integer or None, got 0"),
        ({"pad_token_id": -1}, r"pad_token_id must be a non-negative integer, got -1"),
    ],
)
def test_bad_settings_are_named(kwargs, message):
    with pytest.raises(HelloraError, match=message):
        PadCollator(**{"pad_token_id": 0, **kwargs})


def test_mismatched_lengths_are_a_bug():
    with pytest.raises(ValueError, match=r"batch item 0: labels has length 2, input_ids has 3"):
        PadCollator(0)([{"input_ids": [1, 2, 3], "labels": [1, 2]}])


def test_empty_batch_is_a_bug():
    with pytest.raises(ValueError, match="empty batch"):
        PadCollator(0)([])
