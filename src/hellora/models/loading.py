"""Loading configs, models and tokenizers from a preset name, a local path or a hub id: the one owner of both.

A preset (see `presets.py`) gives an architecture with no weights: enough for parameter accounting and
benchmarks, on the meta device or randomly initialised. Paths and hub ids go through transformers'
Auto classes. The tokenizer name "tiny" is hellora's in-process character tokenizer (`hellora.data.tiny_tokenizer`).

This is the only module that calls transformers' loaders (`from_pretrained`, `from_config`, `AutoConfig`; a test
reads `src/` to keep it so). `trust_remote_code` (a folder's own Python code, e.g. DeepSeekMoE's repository) is
the user's choice alone and must arrive here as a plain bool (`hellora.models.trust`); without it, a folder that
ships code is refused with one line naming the flag.

A name that looks like a path (`./x`, `../x`, `/x`, `~/x`, or one that ends in `/`) but does not exist is reported
as a missing folder; a hub id while the hub is offline (HF_HUB_OFFLINE=1) asks for a local folder instead.
"""

from __future__ import annotations

import os

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PretrainedConfig

from hellora.models.deepseek_moe import DeepseekMoELayoutConfig, DeepseekMoELayoutForCausalLM
from hellora.models.presets import PRESETS
from hellora.models.trust import remote_code_refusal, user_trust
from hellora.utils.dtypes import MODEL_DTYPES as DTYPES
from hellora.utils.errors import HelloraError


def looks_like_path(model: str) -> bool:
    """A path rather than a hub id (`org/name`): `./x`, `/x`, `~/x`, `x/`, `a/b/c`, or `a/b` where `a` is a folder."""
    return model.startswith((".", "/", "~")) or model.endswith(("/", os.sep)) or model.count("/") > 1 \
        or "\\" in model or ("/" in model and os.path.isdir(model.split("/")[0]))


def check_model_name(model: str, what: str = "model") -> None:
    """One clear error for a missing local folder (before transformers calls it a bad repo id)."""
    if model in PRESETS or model == "tiny":
        return
    if looks_like_path(model) and not os.path.exists(os.path.expanduser(model)):
        raise HelloraError(f"{what} {model!r}: no such local folder (check the path; presets: {', '.join(PRESETS)})")


def _why(model: str, err: Exception) -> str:
    first = str(err).splitlines()[0] if str(err) else type(err).__name__
    if os.path.exists(model):
        return first
    where = f"not a preset ({', '.join(PRESETS)}) and not a local folder"
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return f"{where}, and the hub is offline (HF_HUB_OFFLINE=1): download it and pass its local folder"
    return f"{where}; the hub says: {first}"


def _custom_code(err: Exception) -> bool:
    """Whether transformers refused because the folder ships code and trust_remote_code was off."""
    return "trust_remote_code" in str(err) or "custom code" in str(err)


def config_for_model(model_type: str, **values) -> PretrainedConfig:
    """A config of one of transformers' own model types (or hellora's "deepseek" layout) from field values: no
    file is read and no code outside transformers and hellora runs."""
    if model_type == "deepseek":
        return DeepseekMoELayoutConfig(**values)
    return AutoConfig.for_model(model_type, **values)


def _config_from_dict(values: dict) -> PretrainedConfig:
    values = dict(values)
    return config_for_model(values.pop("model_type"), **values)


def load_config(model: str, *, trust_remote_code: bool = False, overrides: dict | None = None) -> PretrainedConfig:
    """Config of a preset, a local folder or a hub id, with optional field overrides (e.g. fewer layers)."""
    if model in PRESETS:
        values = dict(PRESETS[model].config)
        values.update(overrides or {})
        config = _config_from_dict(values)
        config._name_or_path = model
        return config
    check_model_name(model)
    try:
        config = AutoConfig.from_pretrained(model, trust_remote_code=user_trust(trust_remote_code))
    except OSError as e:
        raise HelloraError(f"model {model!r}: cannot load its config: {_why(model, e)}") from None
    except ValueError as e:
        if _custom_code(e):
            raise remote_code_refusal(model) from None
        raise HelloraError(f"model {model!r}: {str(e).splitlines()[0]}") from None
    for key, value in (overrides or {}).items():
        setattr(config, key, value)
    return config


def model_from_config(config: PretrainedConfig, *, dtype: torch.dtype = torch.float32, trust_remote_code: bool = False):
    """Random-init model of `config` (under `torch.device("meta")` this allocates nothing)."""
    if isinstance(config, DeepseekMoELayoutConfig):
        model = DeepseekMoELayoutForCausalLM(config)
        return model.to(dtype) if dtype is not None else model
    try:
        return AutoModelForCausalLM.from_config(config, dtype=dtype, trust_remote_code=user_trust(trust_remote_code))
    except ValueError as e:
        if _custom_code(e):
            raise remote_code_refusal(str(getattr(config, "_name_or_path", "") or config.model_type)) from None
        raise


def meta_model(model: str, *, trust_remote_code: bool = False, overrides: dict | None = None):
    """The model's module structure on the meta device: shapes only, no memory, no weights read."""
    config = load_config(model, trust_remote_code=trust_remote_code, overrides=overrides)
    with torch.device("meta"):
        return model_from_config(config, dtype=None if isinstance(config, DeepseekMoELayoutConfig) else torch.float32,
                                 trust_remote_code=trust_remote_code)


def load_model(model: str, *, dtype: str = "auto", device_map=None, trust_remote_code: bool = False,
               overrides: dict | None = None, seed: int | None = None):
    """Pretrained weights from a local folder or hub id; a preset gives a random-init model (for tests/benches),
    with `overrides` applied to its config and `seed` seeding its init."""
    torch_dtype = DTYPES.get(dtype)
    if torch_dtype is None:
        raise HelloraError(f"dtype: unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    if model in PRESETS:
        if seed is not None:
            torch.manual_seed(seed)
        config = load_config(model, overrides=overrides)
        return model_from_config(config, dtype=torch.float32 if torch_dtype == "auto" else torch_dtype)
    check_model_name(model)
    try:
        return AutoModelForCausalLM.from_pretrained(model, dtype=torch_dtype, device_map=device_map,
                                                    trust_remote_code=user_trust(trust_remote_code))
    except OSError as e:
        raise HelloraError(f"model {model!r}: cannot load weights: {_why(model, e)}") from None
    except ValueError as e:
        if _custom_code(e):
            raise remote_code_refusal(model) from None
        raise


def load_tokenizer(model: str, *, trust_remote_code: bool = False):
    """The tokenizer of a local folder or hub id; "tiny" is hellora's character tokenizer (built in-process)."""
    if model == "tiny":
        from hellora.data.tiny_tokenizer import build_tiny_tokenizer

        return build_tiny_tokenizer()
    check_model_name(model, "tokenizer")
    try:
        tokenizer = AutoTokenizer.from_pretrained(model, trust_remote_code=user_trust(trust_remote_code))
    except ValueError as e:
        if _custom_code(e):
            raise remote_code_refusal(model) from None
        raise HelloraError(f"model {model!r}: cannot load its tokenizer: {_why(model, e)}") from None
    except OSError as e:
        raise HelloraError(f"model {model!r}: cannot load its tokenizer: {_why(model, e)}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
