"""Batched generation for evaluation: left-padded prompts, greedy or sampled, stop strings, saved before scoring.

Generations are written to JSONL (one line per sample: prompt, completion, sampling settings, and any fields of
the source record such as task_id or answer) atomically, so scoring can be rerun alone on the file. The HF
backend runs a model (with or without hellora adapters); the optional vLLM backend runs a merged checkpoint
folder when vLLM is installed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from hellora.utils.errors import HelloraError
from hellora.utils.io import atomic_write_text


@dataclass(frozen=True)
class SamplingSettings:
    """Paper settings: greedy for GSM8K and safety; HumanEval n=20 at temperature 0.2, top-p 0.95."""

    max_new_tokens: int = 512
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    num_samples: int = 1
    seed: int = 0
    stop: tuple = ()


def truncate_at_stop(text: str, stop: tuple | list) -> str:
    """Cut `text` at the earliest stop string (the stop string itself is dropped)."""
    cut = len(text)
    for s in stop:
        i = text.find(s)
        if i != -1:
            cut = min(cut, i)
    return text[:cut]


@torch.no_grad()
def generate_hf(model, tokenizer, prompts: list[str], settings: SamplingSettings, *, batch_size: int = 8,
                progress: bool = True, desc: str = "generating") -> list[list[str]]:
    """Completions for each prompt: a list of `settings.num_samples` strings per prompt."""
    model.eval()
    device = next(model.parameters()).device
    previous_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    torch.manual_seed(settings.seed)
    outputs: list[list[str]] = [[] for _ in prompts]
    jobs = [(i, prompt) for i, prompt in enumerate(prompts) for _ in range(settings.num_samples)]
    try:
        for start in tqdm(range(0, len(jobs), batch_size), desc=desc, disable=not progress, unit="batch"):
            chunk = jobs[start:start + batch_size]
            enc = tokenizer([p for _, p in chunk], return_tensors="pt", padding=True, add_special_tokens=True)
            enc = {k: v.to(device) for k, v in enc.items()}
            kwargs = dict(max_new_tokens=settings.max_new_tokens, do_sample=settings.do_sample, pad_token_id=pad_id,
                          eos_token_id=tokenizer.eos_token_id)
            if settings.do_sample:
                kwargs.update(temperature=settings.temperature, top_p=settings.top_p)
            if settings.stop:
                kwargs.update(stop_strings=list(settings.stop), tokenizer=tokenizer)
            out = model.generate(**enc, **kwargs)
            texts = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
            for (i, _), text in zip(chunk, texts):
                outputs[i].append(truncate_at_stop(text, settings.stop))
    finally:
        tokenizer.padding_side = previous_side
    return outputs


def generate_vllm(model_dir: str, prompts: list[str], settings: SamplingSettings) -> list[list[str]]:
    """The same through vLLM on a merged checkpoint folder (`hellora export --format merged`)."""
    try:
        from vllm import LLM, SamplingParams
    except ImportError:
        raise HelloraError("backend vllm: vLLM is not installed (pip install vllm), or use --backend hf") from None
    llm = LLM(model=model_dir)
    params = SamplingParams(n=settings.num_samples, max_tokens=settings.max_new_tokens, seed=settings.seed,
                            temperature=settings.temperature if settings.do_sample else 0.0,
                            top_p=settings.top_p if settings.do_sample else 1.0, stop=list(settings.stop) or None)
    return [[o.text for o in result.outputs] for result in llm.generate(prompts, params)]


def write_generations(path: str | Path, records: list[dict], prompts: list[str], completions: list[list[str]],
                      settings: SamplingSettings) -> Path:
    """One JSONL line per (record, sample): the record's fields + prompt + completion + settings."""
    lines = []
    for record, prompt, samples in zip(records, prompts, completions):
        for j, completion in enumerate(samples):
            row = {**record, "prompt": prompt, "completion": completion, "sample": j, "sampling": asdict(settings)}
            lines.append(json.dumps(row, ensure_ascii=False))
    return atomic_write_text(path, "\n".join(lines) + "\n")
