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
from typing import Any

import torch
from transformers import (AutoConfig, AutoModelForCausalLM, AutoTokenizer, PretrainedConfig, PreTrainedModel,
                          PreTrainedTokenizerBase)

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
    if not os.path.exists(os.path.expanduser(model)) and not _hub_offline() and not _cached(model) \
            and not hub_reachable():
        raise HelloraError(f"{what} {model!r}: not a local folder, not in the hub cache, and the hub "
                           f"({_hub_host()}) cannot be reached: download it and pass its local folder, or set "
                           f"HF_HUB_OFFLINE=1")


HUB_PROBE_TIMEOUT_S = 3.0  # one TCP connection attempt, instead of transformers' retries for ~50 s


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")


def _hub_host() -> str:
    from urllib.parse import urlparse

    return urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"


def _cached(model: str) -> bool:
    """Whether the hub cache already holds `model`'s config.json (then nothing needs the network)."""
    try:
        from huggingface_hub import try_to_load_from_cache

        return isinstance(try_to_load_from_cache(model, "config.json"), str)
    except Exception:  # an id the hub library rejects: let transformers give its own message
        return True


_REACHABLE: dict[str, bool] = {}


def hub_reachable(timeout: float = HUB_PROBE_TIMEOUT_S) -> bool:
    """Whether a TCP connection to the hub's host opens within `timeout` seconds (asked once per process)."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host = url.hostname or "huggingface.co"
    if host not in _REACHABLE:
        try:
            socket.create_connection((host, url.port or (80 if url.scheme == "http" else 443)), timeout=timeout).close()
            _REACHABLE[host] = True
        except OSError:
            _REACHABLE[host] = False
    return _REACHABLE[host]


def _why(model: str, err: Exception) -> str:
    first = str(err).splitlines()[0] if str(err) else type(err).__name__
    if os.path.exists(model):
        return first
    where = f"not a preset ({', '.join(PRESETS)}) and not a local folder"
    if _hub_offline():
        return f"{where}, and the hub is offline (HF_HUB_OFFLINE=1): download it and pass its local folder"
    return f"{where}; the hub says: {first}"


def _custom_code(err: Exception) -> bool:
    """Whether transformers refused because the folder ships code and trust_remote_code was off."""
    return "trust_remote_code" in str(err) or "custom code" in str(err)


def config_for_model(model_type: str, **values: Any) -> PretrainedConfig:
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
        for token in ("bos_token_id", "eos_token_id", "pad_token_id"):  # a smaller vocab_size override drops
            if token not in (overrides or {}) and isinstance(values.get(token), int) \
                    and values[token] >= values.get("vocab_size", values[token] + 1):
                values[token] = None  # special ids it no longer holds (transformers warns about them otherwise)
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


def model_from_config(config: PretrainedConfig, *, dtype: torch.dtype | None = torch.float32,
                      trust_remote_code: bool = False) -> PreTrainedModel:
    """Random-init model of `config` (under `torch.device("meta")` this allocates nothing)."""
    if isinstance(config, DeepseekMoELayoutConfig):
        model = DeepseekMoELayoutForCausalLM(config)
        # transformers wraps PreTrainedModel.to with functools.wraps of the unbound method: typed as taking self
        return model.to(dtype) if dtype is not None else model  # type: ignore[arg-type]
    try:
        return AutoModelForCausalLM.from_config(config, dtype=dtype, trust_remote_code=user_trust(trust_remote_code))
    except ValueError as e:
        if _custom_code(e):
            raise remote_code_refusal(str(getattr(config, "_name_or_path", "") or config.model_type)) from None
        raise


def meta_model(model: str, *, trust_remote_code: bool = False, overrides: dict | None = None) -> PreTrainedModel:
    """The model's module structure on the meta device: shapes only, no memory, no weights read."""
    config = load_config(model, trust_remote_code=trust_remote_code, overrides=overrides)
    with torch.device("meta"):
        return model_from_config(config, dtype=None if isinstance(config, DeepseekMoELayoutConfig) else torch.float32,
                                 trust_remote_code=trust_remote_code)


def load_model(model: str, *, dtype: str = "auto", device_map: str | dict | None = None, trust_remote_code: bool = False,
               overrides: dict | None = None, seed: int | None = None) -> PreTrainedModel:
    """Pretrained weights from a local folder or hub id; a preset gives a random-init model (for tests/benches),
    with `overrides` applied to its config and `seed` seeding its init."""
    torch_dtype = DTYPES.get(dtype)
    if torch_dtype is None:
        raise HelloraError(f"dtype: unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    if model in PRESETS:
        if seed is not None:
            torch.manual_seed(seed)
        config = load_config(model, overrides=overrides)
        return model_from_config(config, dtype=torch.float32 if isinstance(torch_dtype, str) else torch_dtype)  # "auto"
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


def load_tokenizer(model: str, *, trust_remote_code: bool = False) -> PreTrainedTokenizerBase:
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
