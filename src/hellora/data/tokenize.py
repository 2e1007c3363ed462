"""Turn (prompt, target) text pairs into token ids with the prompt masked out of the loss.

Supervised fine-tuning trains only on the response: the prompt's labels are -100 (ignored by the cross-entropy
in every Hugging Face causal LM), the target's labels are its own ids, and EOS closes the target so the model
learns to stop. Getting the boundary exactly right matters: one token off and the model is trained to predict
part of its own prompt, or never sees the first token of its answer.

How the boundary is made exact: the prompt and the target are tokenized *separately*, with the tokenizer's own
special-token insertion switched off, and concatenated here. BOS (if any) and EOS are added explicitly by this
module, so behaviour does not depend on whether a tokenizer happens to insert them itself.

Truncation (lengths count tokens, BOS included):
  * the prompt is cut to `max_prompt_length` by dropping tokens from its *start* and keeping its end (after BOS).
    The end carries the instruction ("Answer the above question...", "### Response:") and the question itself,
    which the model must see to know what and how to answer; a long preamble or context loses least from the front.
  * then prompt + target + EOS is cut to `max_length` by dropping the end of the target. A target cut this way
    has no EOS, so the model is not taught to stop in mid-answer.

Caveat: SentencePiece tokenizers that add a "prefix space" (e.g. Llama's "▁") may tokenize a target's first word
differently alone than after the prompt. The labels still match the input ids exactly; only the ids differ
slightly from tokenizing the whole string at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable, Sequence

from hellora.utils.errors import HelloraError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

IGNORE_INDEX = -100


def _check_length(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise HelloraError(f"{name} must be a positive integer, got {value!r}")
    return value


def _ids(tokenizer, text: str) -> list[int]:
    """Token ids of `text` with no special tokens added by the tokenizer."""
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def tokenizer_adds_bos(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether the tokenizer puts BOS in front of text by itself (its model was trained with that convention)."""
    bos = getattr(tokenizer, "bos_token_id", None)
    if bos is None:
        return False
    ids = tokenizer("a", add_special_tokens=True)["input_ids"]
    return bool(ids) and ids[0] == bos


def _bos_prefix(tokenizer, add_bos: bool | None) -> list[int]:
    bos = getattr(tokenizer, "bos_token_id", None)
    if add_bos is None:
        add_bos = tokenizer_adds_bos(tokenizer)
    if not add_bos:
        return []
    if bos is None:
        raise HelloraError("add_bos=True but the tokenizer has no bos_token; pass add_bos=None or False")
    return [bos]


def encode_prompt(
    tokenizer: PreTrainedTokenizerBase,
    prompt: str,
    max_prompt_length: int = 256,
    *,
    add_bos: bool | None = None,
) -> list[int]:
    """Token ids for a prompt alone (generation input), BOS-prefixed and truncated exactly as in `encode_example`.

    `add_bos=None` follows the tokenizer's own convention (prepend BOS only if the tokenizer would), True/False
    force it. Using this for evaluation guarantees the model sees the same prompt ids it was trained on.
    """
    _check_length("max_prompt_length", max_prompt_length)
    prefix = _bos_prefix(tokenizer, add_bos)
    if len(prefix) >= max_prompt_length:
        raise HelloraError(f"max_prompt_length must exceed the {len(prefix)} BOS token(s), got {max_prompt_length}")
    body = _ids(tokenizer, prompt)
    keep = max_prompt_length - len(prefix)
    return prefix + body[len(body) - keep:] if len(body) > keep else prefix + body


def encode_example(
    tokenizer: PreTrainedTokenizerBase,
    prompt: str,
    target: str,
    max_length: int = 512,
    max_prompt_length: int = 256,
    *,
    add_bos: bool | None = None,
    add_eos: bool = True,
) -> dict[str, list[int]]:
    """Encode one training pair: returns `input_ids`, `attention_mask` and `labels` (prompt labels = -100).

    The result is unpadded plain lists; `hellora.data.collate.PadCollator` pads a batch. Raises `HelloraError`
    for bad lengths or a tokenizer without an EOS token (the stop signal the model must learn).
    """
    _check_length("max_length", max_length)
    _check_length("max_prompt_length", max_prompt_length)
    if max_prompt_length >= max_length:
        raise HelloraError(
            f"max_prompt_length ({max_prompt_length}) must be smaller than max_length ({max_length}), "
            "or no target token would fit"
        )
    eos = getattr(tokenizer, "eos_token_id", None)
    if add_eos and eos is None:
        raise HelloraError("the tokenizer has no eos_token, so the model could not learn where an answer ends")
    prompt_ids = encode_prompt(tokenizer, prompt, max_prompt_length, add_bos=add_bos)
    target_ids = _ids(tokenizer, target) + ([eos] if add_eos and eos is not None else [])  # (no eos: refused)
    target_ids = target_ids[: max_length - len(prompt_ids)]
    input_ids = prompt_ids + target_ids
    return {
        "input_ids": input_ids,
        "attention_mask": [1] * len(input_ids),
        "labels": [IGNORE_INDEX] * len(prompt_ids) + target_ids,
    }


def encode_pairs(
    tokenizer: PreTrainedTokenizerBase,
    pairs: Iterable[Sequence[str]],
    max_length: int = 512,
    max_prompt_length: int = 256,
    *,
    add_bos: bool | None = None,
    add_eos: bool = True,
) -> list[dict[str, list[int]]]:
    """`encode_example` over many (prompt, target) pairs, deciding the BOS convention once for all of them."""
    bos = _bos_prefix(tokenizer, add_bos)
    return [
        encode_example(tokenizer, p, t, max_length, max_prompt_length, add_bos=bool(bos), add_eos=add_eos)
        for p, t in pairs
    ]
