"""A model ready for inference: base weights, an adapter on top, the tokenizer its run recorded.

Kept apart from `hellora.models.loading` because it reads adapters (`hellora.adapters.io`), which themselves
build models through `models.loading`: the two directions stay in two modules, so no import cycle exists.
"""

from __future__ import annotations

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from hellora.adapters.io import load_adapter, read_adapter_record
from hellora.models.loading import load_model, load_tokenizer
from hellora.models.trust import check_recorded_trust


def load_model_and_tokenizer(model: str, *, tokenizer: str | None = None, adapter: str | None = None,
                             dtype: str = "auto", trust_remote_code: bool = False,
                             device: str = "auto") -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """(model, tokenizer) for inference: the model's own tokenizer unless `tokenizer` names one ("tiny" included),
    an `adapter` folder loaded on top (a preset is rebuilt as the adapter's run recorded it: config overrides and
    tokenizer), moved to CUDA when `device` is "auto" and a GPU exists."""
    overrides, recorded_tokenizer = None, None
    if adapter:  # a preset is rebuilt with the config overrides and tokenizer its run recorded
        spec = read_adapter_record(adapter).get("model") or {}
        if spec.get("name") == model:
            overrides, recorded_tokenizer = spec.get("overrides") or None, spec.get("tokenizer")
            check_recorded_trust(spec.get("trust_remote_code"), trust_remote_code, f"adapter {adapter}")
    net = load_model(model, dtype=dtype, trust_remote_code=trust_remote_code, overrides=overrides)
    if adapter:
        load_adapter(net, adapter)
    tok = load_tokenizer(tokenizer or recorded_tokenizer or model, trust_remote_code=trust_remote_code)
    if device == "auto" and torch.cuda.is_available():
        net.to("cuda")  # type: ignore[arg-type]  # transformers types PreTrainedModel.to as the unbound method
    return net, tok
