"""Loading configs, models and tokenizers from a preset name, a local path or a hub id.

A preset (see `presets.py`) gives an architecture with no weights: enough for parameter accounting and
benchmarks, on the meta device or randomly initialised. Paths and hub ids go through transformers'
Auto classes (`trust_remote_code` for DeepSeekMoE-style repositories).
"""

from __future__ import annotations

import os

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PretrainedConfig

from hellora.models.deepseek_moe import DeepseekMoELayoutConfig, DeepseekMoELayoutForCausalLM
from hellora.models.presets import PRESETS
from hellora.utils.dtypes import MODEL_DTYPES as DTYPES
from hellora.utils.errors import HelloraError


def _config_from_dict(values: dict) -> PretrainedConfig:
    values = dict(values)
    model_type = values.pop("model_type")
    if model_type == "deepseek":
        return DeepseekMoELayoutConfig(**values)
    return AutoConfig.for_model(model_type, **values)


def load_config(model: str, *, trust_remote_code: bool = False, overrides: dict | None = None) -> PretrainedConfig:
    """Config of a preset, a local folder or a hub id, with optional field overrides (e.g. fewer layers)."""
    if model in PRESETS:
        values = dict(PRESETS[model].config)
        values.update(overrides or {})
        config = _config_from_dict(values)
        config._name_or_path = model
        return config
    try:
        config = AutoConfig.from_pretrained(model, trust_remote_code=trust_remote_code)
    except OSError as e:
        hint = "" if os.path.exists(model) else f" (not a preset: {', '.join(PRESETS)}; not a local folder)"
        raise HelloraError(f"model {model!r}: cannot load its config{hint}: {str(e).splitlines()[0]}") from None
    except ValueError as e:
        raise HelloraError(f"model {model!r}: {str(e).splitlines()[0]}") from None
    for key, value in (overrides or {}).items():
        setattr(config, key, value)
    return config


def model_from_config(config: PretrainedConfig, *, dtype: torch.dtype = torch.float32, trust_remote_code: bool = False):
    """Random-init model of `config` (under `torch.device("meta")` this allocates nothing)."""
    if isinstance(config, DeepseekMoELayoutConfig):
        model = DeepseekMoELayoutForCausalLM(config)
        return model.to(dtype) if dtype is not None else model
    return AutoModelForCausalLM.from_config(config, dtype=dtype, trust_remote_code=trust_remote_code)


def meta_model(model: str, *, trust_remote_code: bool = False, overrides: dict | None = None):
    """The model's module structure on the meta device: shapes only, no memory, no weights read."""
    config = load_config(model, trust_remote_code=trust_remote_code, overrides=overrides)
    with torch.device("meta"):
        return model_from_config(config, dtype=None if isinstance(config, DeepseekMoELayoutConfig) else torch.float32,
                                 trust_remote_code=trust_remote_code)


def load_model(model: str, *, dtype: str = "auto", device_map=None, trust_remote_code: bool = False):
    """Pretrained weights from a local folder or hub id; a preset gives a random-init model (for tests/benches)."""
    torch_dtype = DTYPES.get(dtype)
    if torch_dtype is None:
        raise HelloraError(f"dtype: unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    if model in PRESETS:
        config = load_config(model)
        return model_from_config(config, dtype=torch.float32 if torch_dtype == "auto" else torch_dtype)
    try:
        return AutoModelForCausalLM.from_pretrained(model, dtype=torch_dtype, device_map=device_map,
                                                    trust_remote_code=trust_remote_code)
    except OSError as e:
        raise HelloraError(f"model {model!r}: cannot load weights: {str(e).splitlines()[0]}") from None


def load_tokenizer(model: str, *, trust_remote_code: bool = False):
    try:
        tokenizer = AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise HelloraError(f"model {model!r}: cannot load its tokenizer: {str(e).splitlines()[0]}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
