"""Adapters for MoE models: dense linears, routers, and fused experts restricted to a hot subset.

`AdapterConfig` says what to adapt and how (method lora / hellora / loramoe / fft; variant none / dora / lori_d /
lori_s; targets pure / gate / all); `attach_adapters` wraps the model's modules in place and reads no file;
`save_adapter` / `load_adapter` / `read_lori_d` (`io.py`) persist and read them as safetensors + JSON; `export`
writes PEFT-loadable or merged checkpoints; `count_parameters` / `parameter_report` (`accounting.py`) count what
trains. `lori_mask_from_adapter` builds LoRI-S's global mask from a LoRI-D adapter folder; `loramoe_balance_loss`
returns LoRAMoE's localized balancing loss of the last forward.
"""

from hellora.adapters.config import AdapterConfig
from hellora.adapters.inject import (adapter_layers, attach_adapters, disable_adapters, merge_adapters,
                                     remove_adapters)
from hellora.adapters.io import load_adapter, lori_mask_from_adapter, read_lori_d, save_adapter
from hellora.adapters.loramoe import loramoe_balance_loss

__all__ = ["AdapterConfig", "attach_adapters", "adapter_layers", "disable_adapters", "merge_adapters", "remove_adapters",
           "lori_mask_from_adapter", "loramoe_balance_loss", "load_adapter", "read_lori_d", "save_adapter"]
