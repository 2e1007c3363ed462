"""What the training data looks like after tokenization, said before training: counts of the examples that would
otherwise teach something silently wrong.

    empty prompts / answers   a prompt or answer that is blank (whitespace only)
    unknown characters        examples with tokens the tokenizer maps to its unk token (characters it cannot spell)
    truncated                 prompts cut to max_prompt_length (from the left, as encode_prompt does) and answers
                              cut to what max_length leaves (their end, often the answer itself, is lost)

`summarize_pairs` counts them from the same token ids training uses; `format_summary` is the one line the pipeline
logs (a warning when any count is non-zero); the counts are recorded in run.json's `data` step.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from hellora.data.tokenize import IGNORE_INDEX, _bos_prefix, _ids

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase


def summarize_pairs(tokenizer: PreTrainedTokenizerBase, pairs: Sequence[Sequence[str]], features: Sequence[dict], max_length: int,
                    max_prompt_length: int, *, add_bos: bool | None = None) -> dict:
    """Counts over `pairs` (prompt, answer) and their encoded `features` (`encode_pairs`'s output with the same
    `add_bos`, same order)."""
    bos_len = len(_bos_prefix(tokenizer, add_bos))
    unk = getattr(tokenizer, "unk_token_id", None)
    eos = getattr(tokenizer, "eos_token_id", None)
    summary = {"examples": len(pairs), "empty_prompts": 0, "empty_answers": 0, "with_unknown": 0,
               "unknown_tokens": 0, "truncated_prompts": 0, "truncated_answers": 0, "max_length": max_length,
               "max_prompt_length": max_prompt_length}
    for (prompt, answer), feature in zip(pairs, features):
        summary["empty_prompts"] += not prompt.strip()
        summary["empty_answers"] += not answer.strip()
        ids = feature["input_ids"]
        if unk is not None:
            found = sum(1 for i in ids if i == unk)
            summary["with_unknown"] += found > 0
            summary["unknown_tokens"] += found
        prompt_kept = sum(1 for label in feature["labels"] if label == IGNORE_INDEX)
        summary["truncated_prompts"] += len(_ids(tokenizer, prompt)) > prompt_kept - bos_len
        answer_ids = _ids(tokenizer, answer) + ([eos] if eos is not None else [])
        summary["truncated_answers"] += len(ids) - prompt_kept < len(answer_ids)
    return summary


PROBLEMS = (("empty_prompts", "empty prompts"), ("empty_answers", "empty answers"),
            ("with_unknown", "with characters outside the tokenizer (mapped to its unk token)"),
            ("truncated_prompts", "prompts truncated to max_prompt_length {max_prompt_length}"),
            ("truncated_answers", "answers truncated by max_length {max_length}"))


def format_summary(summary: dict) -> tuple[str, bool]:
    """(one line, whether any problem was counted): "data: 120 examples; 24 empty prompts (20.0%), ..."."""
    n = summary["examples"] or 1
    found = [f"{summary[key]} {text.format(**summary)} ({100 * summary[key] / n:.1f}%)"
             for key, text in PROBLEMS if summary.get(key)]
    line = f"data: {summary['examples']} examples; " + ("; ".join(found) if found else "no empty, unknown or "
                                                                                       "truncated examples")
    return line, bool(found)
