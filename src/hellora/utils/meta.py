"""What every result file records about how it was made: versions, device, time."""

from __future__ import annotations

import datetime as _dt
import platform

import peft
import torch
import transformers

import hellora


def run_metadata(seed: int | None = None) -> dict:
    device = "cpu"
    if torch.cuda.is_available():
        device = torch.cuda.get_device_name(0)
    meta: dict[str, str | int] = {
        "hellora": hellora.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "python": platform.python_version(),
        "device": device,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if seed is not None:
        meta["seed"] = seed
    return meta
