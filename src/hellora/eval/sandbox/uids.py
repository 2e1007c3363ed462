"""The unprivileged uids samples run under when the harness is root.

One uid per (harness pid, worker slot), far above any real account, so RLIMIT_NPROC counts only one
sample's processes and "kill everything with this uid" cannot hit anything else. pid < 2**22 and
slot < 256 keep it below 0xB0000000. A slot is held for the whole run of a sample, so no two running
samples share a uid.
"""

from __future__ import annotations

import os
import threading

UID_BASE = 0x7000_0000
MAX_SLOTS = 256
FALLBACK_UID = 65534  # "nobody", if the kernel refuses our high uid (e.g. a container's restricted map)


class SlotPool:
    """Hands out worker slot numbers (hence sample uids) so that no two running samples share one."""

    def __init__(self, size: int) -> None:
        self._free = list(range(size))
        self._cond = threading.Condition()

    def acquire(self) -> int:
        with self._cond:
            while not self._free:
                self._cond.wait()
            return self._free.pop(0)

    def release(self, slot: int) -> None:
        with self._cond:
            self._free.append(slot)
            self._free.sort()
            self._cond.notify()


SLOTS = SlotPool(MAX_SLOTS)


def sample_uid(slot: int) -> int:
    """The uid of the sample running in `slot` of this harness process."""
    return UID_BASE + (os.getpid() << 8) + slot
