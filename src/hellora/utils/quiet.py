"""Import-time chatter of libraries hellora uses, silenced where it starts.

With torchao installed (the `quant` and `test` extras), PEFT imports it while attaching any LoRA, and torchao logs
one "Failed to load ..." line per CUDA extension a CPU build lacks, while torch warns that torchao's enums are
registered the old way. Neither is about the user's run, and a proxy study printed them once per worker process.
Set before those imports: the loggers stay at ERROR, so real errors still print.
"""

from __future__ import annotations

import logging

IMPORT_CHATTER_LOGGERS = ("torchao", "torch.utils._pytree")


def quiet_import_chatter() -> None:
    for name in IMPORT_CHATTER_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
