"""Short windows of real text, for mixing natural language into a toy model's pretraining (the proxy study).

The proxy study pretrains a small MoE on generated skills. Real MoE models are pretrained on text, so real text
is mixed in where it helps: each snippet here is a `length`-character window of a record's
text (all its string fields joined, whitespace collapsed, non-printable characters dropped so the character
tokenizer never sees <unk>), cut at word boundaries and split into a short prompt and its continuation, so that
the same prompt-masked features and trainer serve it as serve the skills:

    {"prompt": "Natalia sold clips to ", "answer": "48 of her friends in April, and then", "skill": "text"}
"""

from __future__ import annotations

import random
import re
import string
from pathlib import Path

from hellora.data.loading import load_records
from hellora.utils.errors import HelloraError

_PRINTABLE = set(string.printable) - set("\t\n\r\x0b\x0c")


def _record_text(record) -> str:
    values = record.values() if isinstance(record, dict) else [record]
    text = " ".join(v for v in values if isinstance(v, str))
    text = "".join(c for c in re.sub(r"\s+", " ", text) if c in _PRINTABLE)
    return text.strip()


def text_snippets(files: list[str | Path], n: int, seed: int = 0, *, length: int = 60,
                  prompt_length: int = 20) -> list[dict[str, str]]:
    """`n` snippets drawn evenly from `files` (JSON, JSONL, CSV, gzip: `load_records`), deterministic for `seed`."""
    if n < 0 or length <= prompt_length or prompt_length < 1:
        raise HelloraError(f"text snippets: need n >= 0 and 0 < prompt_length < length, got {n}, {prompt_length}, "
                           f"{length}")
    if n and not files:
        raise HelloraError("text snippets: text_examples > 0 needs at least one file in text_files")
    texts = []
    for path in files:
        found = [t for t in (_record_text(r) for r in load_records(path)) if len(t) > length]
        if not found:
            raise HelloraError(f"text snippets: {path} has no record with more than {length} characters of text")
        texts.append(found)
    rng = random.Random(f"hellora-text/{seed}")
    out = []
    for i in range(n):
        text = rng.choice(texts[i % len(texts)])
        starts = [0] + [m.end() for m in re.finditer(" ", text[: len(text) - length])]
        start = rng.choice(starts)
        window = text[start:start + length]
        cut = window.rfind(" ", 1, prompt_length)
        cut = cut + 1 if cut > 0 else prompt_length
        out.append({"prompt": window[:cut], "answer": window[cut:].rstrip(), "skill": "text"})
    return out
