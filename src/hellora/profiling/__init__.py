"""Counting which experts a task routes to: router hooks, the saved `ExpertProfile`, forward-only profiling.

Names are imported on first use, so reading or comparing saved profiles (`hellora select`, `hellora compare`)
does not import torch.
"""

from importlib import import_module
from typing import Any

_WHERE = {"ExpertActivationCounter": "counter", "ExpertProfile": "profile", "compare_profiles": "profile",
          "profile_experts": "forward"}

__all__ = ["ExpertActivationCounter", "ExpertProfile", "compare_profiles", "profile_experts"]


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'hellora.profiling' has no attribute {name!r}")
    value = getattr(import_module(f"hellora.profiling.{_WHERE[name]}"), name)
    globals()[name] = value
    return value
