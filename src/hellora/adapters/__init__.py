"""Adapters for MoE models: dense linears, routers, and fused experts restricted to a hot subset.

`AdapterConfig` says what to adapt and how (method lora / hellora / loramoe / fft; variant none / dora / lori_d /
lori_s; targets pure / gate / all); `attach_adapters` wraps the model's modules in place and reads no file;
`save_adapter` / `load_adapter` / `read_lori_d` (`io.py`) persist and read them as safetensors + JSON; `export`
writes PEFT-loadable or merged checkpoints; `count_parameters` / `parameter_report` (`accounting.py`) count what
trains. `lori_mask_from_adapter` builds LoRI-S's global mask from a LoRI-D adapter folder; `loramoe_balance_loss`
returns LoRAMoE's localized balancing loss of the last forward.

The names below are imported on first use (PEP 562), so `import hellora.adapters.config` or the torch-free
parameter count (`accounting.parameter_report` on a preset) does not pay for torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the real names, for type checkers and import-graph tools
    from hellora.adapters.config import AdapterConfig
    from hellora.adapters.inject import (adapter_layers, attach_adapters, disable_adapters, merge_adapters,
                                         remove_adapters)
    from hellora.adapters.io import load_adapter, lori_mask_from_adapter, read_lori_d, save_adapter
    from hellora.adapters.loramoe import loramoe_balance_loss

_HOMES = {
    "AdapterConfig": "config",
    "attach_adapters": "inject", "adapter_layers": "inject", "disable_adapters": "inject",
    "merge_adapters": "inject", "remove_adapters": "inject",
    "load_adapter": "io", "lori_mask_from_adapter": "io", "read_lori_d": "io", "save_adapter": "io",
    "loramoe_balance_loss": "loramoe",
}

__all__ = ["AdapterConfig", "attach_adapters", "adapter_layers", "disable_adapters", "merge_adapters", "remove_adapters",
           "lori_mask_from_adapter", "loramoe_balance_loss", "load_adapter", "read_lori_d", "save_adapter"]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_HOMES])
