"""Batched generation for evaluation: left-padded prompts, greedy or sampled, stop strings, saved before scoring.

Generations are written to JSONL (one line per sample: prompt, completion, sampling settings, and any fields of
the source record such as task_id or answer) atomically, so scoring can be rerun alone on the file. The HF
backend (here) runs a model (with or without hellora adapters); the optional vLLM backend
(`hellora.eval.vllm_backend`) runs a merged checkpoint folder under the same settings when vLLM is installed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

from hellora.utils.errors import HelloraError
from hellora.utils.io import atomic_write_text
from hellora.utils.progress import progress_bar


@dataclass(frozen=True)
class SamplingSettings:
    """Everything about generation that changes a score (each eval protocol fixes one of these).

    `top_k`: None leaves the model's generation config in charge (HF's default is 50); 0 turns it off (the
    bigcode harness). `add_special_tokens`: False encodes the prompt without BOS (LoRI, lm-eval).
    `skip_special_tokens`: False keeps special tokens generated before EOS in the completion (text up to the first
    EOS), so an exact-match scorer sees them; True drops them all (the usual decoding). `max_length`:
    a budget for prompt + generation in tokens (the bigcode harness's `max_length_generation`); when set, each
    batch holds one prompt's samples and gets `max_length - prompt tokens` new tokens instead of `max_new_tokens`.
    """

    max_new_tokens: int = 512
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    num_samples: int = 1
    seed: int = 0
    stop: tuple = ()
    top_k: int | None = None
    add_special_tokens: bool = True
    max_length: int | None = None
    skip_special_tokens: bool = True

    def __post_init__(self):
        for name in ("max_new_tokens", "num_samples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise HelloraError(f"sampling.{name}: expected a positive integer, got {value!r}")
        if self.top_k is not None and (isinstance(self.top_k, bool) or not isinstance(self.top_k, int)
                                       or self.top_k < 0):
            raise HelloraError(f"sampling.top_k: expected None or an integer >= 0, got {self.top_k!r}")
        if self.max_length is not None and (not isinstance(self.max_length, int) or self.max_length < 1):
            raise HelloraError(f"sampling.max_length: expected None or a positive integer, got {self.max_length!r}")


def truncate_at_stop(text: str, stop: tuple | list) -> str:
    """Cut `text` at the earliest stop string (the stop string itself is dropped)."""
    cut = len(text)
    for s in stop:
        i = text.find(s)
        if i != -1:
            cut = min(cut, i)
    return text[:cut]


@torch.no_grad()
def generate_hf(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompts: list[str], settings: SamplingSettings, *, batch_size: int = 8,
                progress: bool = True, desc: str = "generating") -> list[list[str]]:
    """Completions for each prompt: a list of `settings.num_samples` strings per prompt."""
    model.eval()
    device = next(model.parameters()).device
    previous_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    torch.manual_seed(settings.seed)
    outputs: list[list[str]] = [[] for _ in prompts]
    try:
        for chunk in progress_bar(_batches(prompts, settings, batch_size), desc=desc, disable=not progress,
                                  unit="batch"):
            enc = tokenizer([p for _, p in chunk], return_tensors="pt", padding=True,
                            add_special_tokens=settings.add_special_tokens)
            enc = {k: v.to(device) for k, v in enc.items()}
            new_tokens = settings.max_new_tokens
            if settings.max_length is not None:
                new_tokens = settings.max_length - enc["input_ids"].shape[1]
                if new_tokens < 1:  # the prompt alone fills the budget: nothing is generated
                    for i, _ in chunk:
                        outputs[i].append("")
                    continue
            kwargs = dict(max_new_tokens=new_tokens, do_sample=settings.do_sample, pad_token_id=pad_id,
                          eos_token_id=tokenizer.eos_token_id)
            if settings.do_sample:
                kwargs.update(temperature=settings.temperature, top_p=settings.top_p)
                if settings.top_k is not None:
                    kwargs.update(top_k=settings.top_k)
            if settings.stop:
                kwargs.update(stop_strings=list(settings.stop), tokenizer=tokenizer)
            # PreTrainedModel itself has no generate() in transformers 5: causal LMs add it with GenerationMixin
            out = model.generate(**enc, **kwargs)  # type: ignore[operator]
            texts = _decode(tokenizer, out[:, enc["input_ids"].shape[1]:], settings.skip_special_tokens)
            for (i, _), text in zip(chunk, texts):
                outputs[i].append(truncate_at_stop(text, settings.stop))
    finally:
        tokenizer.padding_side = previous_side
    return outputs


def _decode(tokenizer, new_tokens: torch.Tensor, skip_special_tokens: bool) -> list[str]:
    """Text of each row of generated ids (B, T): all special tokens dropped, or (skip_special_tokens False) the
    ids before the row's first EOS decoded as they are."""
    if skip_special_tokens:
        return tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
    rows = []
    for ids in new_tokens.tolist():
        if tokenizer.eos_token_id in ids:
            ids = ids[:ids.index(tokenizer.eos_token_id)]
        rows.append(tokenizer.decode(ids, skip_special_tokens=False))
    return rows


def _batches(prompts: list[str], settings: SamplingSettings, batch_size: int) -> list[list[tuple[int, str]]]:
    """(prompt index, prompt) jobs in batches; with a prompt + generation budget a batch never mixes prompts."""
    jobs = [(i, prompt) for i, prompt in enumerate(prompts) for _ in range(settings.num_samples)]
    if settings.max_length is None:
        return [jobs[s:s + batch_size] for s in range(0, len(jobs), batch_size)]
    per_prompt = [jobs[i * settings.num_samples:(i + 1) * settings.num_samples] for i in range(len(prompts))]
    return [group[s:s + batch_size] for group in per_prompt for s in range(0, len(group), batch_size)]


def write_generations(path: str | Path, records: list[dict], prompts: list[str], completions: list[list[str]],
                      settings: SamplingSettings) -> Path:
    """One JSONL line per (record, sample): the record's fields + prompt + completion + settings."""
    lines = []
    for record, prompt, samples in zip(records, prompts, completions):
        for j, completion in enumerate(samples):
            row = {**record, "prompt": prompt, "completion": completion, "sample": j, "sampling": asdict(settings)}
            lines.append(json.dumps(row, ensure_ascii=False))
    return atomic_write_text(path, "\n".join(lines) + "\n")
