"""A tiny character-level tokenizer, built in-process, for tests and the CPU demo.

Real MoE checkpoints (OLMoE, Mixtral, DeepSeekMoE) come with 50k-100k-token vocabularies that must be downloaded.
Tests and the synthetic-skill demo need a tokenizer that exists without files or network, is identical on every
machine, and is small enough that a toy model's embedding table stays tiny. One token per character gives that,
and makes every length in a test easy to predict: "12+7=" is exactly 5 tokens.

Vocabulary (ids are fixed, so saved toy models stay loadable): 0 "<pad>", 1 "<s>", 2 "</s>", 3 "<unk>", then
the 100 characters of Python's `string.printable` in code-point order - tab, newline, vertical tab, form feed,
carriage return (so Windows line ends survive), then space to "~" - 104 tokens. Any other character (e.g. "é")
becomes "<unk>". By default no BOS/EOS is inserted on encode, so
`decode(encode(text)) == text` for ASCII text; `add_bos=True` builds a variant that prepends BOS like Llama-style
tokenizers do, to exercise that code path.

The result is a regular `transformers` fast tokenizer: `save_pretrained` writes tokenizer.json (no pickle) and
`AutoTokenizer.from_pretrained` loads it back.
"""

from __future__ import annotations

import string
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")
PAD, BOS, EOS, UNK = SPECIAL_TOKENS
#: Every ordinary character in the vocabulary, in id order.
CHARACTERS = "".join(sorted(string.printable))


def tiny_vocab() -> dict[str, int]:
    """Token -> id for the tiny tokenizer: specials first, then characters by code point."""
    return {tok: i for i, tok in enumerate(list(SPECIAL_TOKENS) + list(CHARACTERS))}


def build_tiny_tokenizer(*, add_bos: bool = False, model_max_length: int = 2048) -> PreTrainedTokenizerFast:
    """Return a `transformers.PreTrainedTokenizerFast` with the fixed character vocabulary described above.

    `model_max_length` only informs transformers' length warnings; hellora truncates explicitly.
    """
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = tiny_vocab()
    core = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    # One pre-token per character, newlines included ([\s\S] rather than ".", which would skip "\n").
    core.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    core.decoder = decoders.Fuse()  # join characters with nothing in between
    core.add_special_tokens(list(SPECIAL_TOKENS))
    if add_bos:
        core.post_processor = processors.TemplateProcessing(
            single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, vocab[BOS])]
        )
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        pad_token=PAD,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        clean_up_tokenization_spaces=False,  # would turn "a ." into "a." and break the round trip
        model_max_length=model_max_length,
    )
