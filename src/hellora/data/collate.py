"""Pad a list of encoded examples into a batch of tensors.

`encode_example` returns unpadded lists so each example costs only its own length; this collator pads a batch to
its longest member (optionally rounded up to a multiple, which tensor cores and some kernels prefer).

Padding values: input_ids get the pad id, attention_mask gets 0 (padding is invisible to attention) and labels
get -100 (padding never enters the loss). Because of those two, the pad id itself never influences training; a
tokenizer without a pad token can safely pad with its EOS id (`PadCollator.for_tokenizer` does that).

Side: right padding for training (positions 0..n-1 stay where the model saw them in pre-training); left padding
for batched generation, where every prompt must end at the last column so new tokens are appended after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import torch

from hellora.data.tokenize import IGNORE_INDEX
from hellora.utils.errors import HelloraError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

#: Keys padded as token sequences, with the value used for padding (None: the collator's pad id).
_PADDED_KEYS = {"input_ids": None, "attention_mask": 0, "labels": IGNORE_INDEX}


@dataclass(frozen=True)
class PadCollator:
    """Callable batch collator: `collator(features) -> dict` of `torch.long` tensors (other keys as lists).

    Every feature needs `input_ids`; `attention_mask` defaults to all ones and `labels` is padded only when the
    features carry it (generation batches do not). Non-sequence keys (e.g. a reference answer kept for scoring)
    are passed through as plain lists, in batch order.
    """

    pad_token_id: int
    padding_side: str = "right"
    pad_to_multiple_of: int | None = None
    label_pad_id: int = IGNORE_INDEX

    def __post_init__(self) -> None:
        if isinstance(self.pad_token_id, bool) or not isinstance(self.pad_token_id, int) or self.pad_token_id < 0:
            raise HelloraError(f"pad_token_id must be a non-negative integer, got {self.pad_token_id!r}")
        if self.padding_side not in ("left", "right"):
            raise HelloraError(f"padding_side must be 'left' or 'right', got {self.padding_side!r}")
        m = self.pad_to_multiple_of
        if m is not None and (isinstance(m, bool) or not isinstance(m, int) or m < 1):
            raise HelloraError(f"pad_to_multiple_of must be a positive integer or None, got {m!r}")

    @classmethod
    def for_tokenizer(cls, tokenizer: PreTrainedTokenizerBase, **kwargs: Any) -> "PadCollator":
        """A collator using the tokenizer's pad id, or its EOS id when it has no pad token (see module doc)."""
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        if pad is None:
            raise HelloraError("the tokenizer has neither a pad_token nor an eos_token to pad batches with")
        return cls(pad_token_id=pad, **kwargs)

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        if not features:
            raise ValueError("cannot collate an empty batch")
        lengths = []
        for i, f in enumerate(features):
            if "input_ids" not in f:
                raise ValueError(f"batch item {i} has no input_ids")
            n = len(f["input_ids"])
            for key in ("attention_mask", "labels"):
                if key in f and len(f[key]) != n:
                    raise ValueError(f"batch item {i}: {key} has length {len(f[key])}, input_ids has {n}")
            lengths.append(n)
        width = max(lengths)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of

        has_labels = ["labels" in f for f in features]
        if any(has_labels) and not all(has_labels):
            raise ValueError("some batch items have labels and some do not")

        batch: dict[str, Any] = {}
        for key, pad_value in _PADDED_KEYS.items():
            if key == "labels" and not has_labels[0]:
                continue
            value = self.pad_token_id if key == "input_ids" else (self.label_pad_id if key == "labels" else pad_value)
            rows = []
            for f, n in zip(features, lengths):
                seq = list(f[key]) if key in f else [1] * n  # attention_mask defaults to "attend everywhere"
                pad = [value] * (width - n)
                rows.append(pad + seq if self.padding_side == "left" else seq + pad)
            batch[key] = torch.tensor(rows, dtype=torch.long)

        for key in features[0]:
            if key not in _PADDED_KEYS:
                batch[key] = [f.get(key) for f in features]
        return batch
