"""Per-sample resource limits: what a caller asks for (`SandboxLimits`) and the rlimits the child gets.

The rlimits are set by `preexec_fn`, in the forked child before it execs the launcher, so they bind the
launcher, the sample and everything the sample starts. The launcher reads them back and reports them
(`protections["rlimit_values"]`), since a failed setrlimit in preexec_fn cannot be reported from there.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from hellora.utils.errors import HelloraError


@dataclass(frozen=True)
class SandboxLimits:
    """Per-sample limits. The wall-clock `timeout` includes interpreter start-up (~50 ms)."""

    timeout: float = 10.0
    cpu_seconds: int | None = None  # default ceil(timeout) + 1: a CPU-bound loop dies by SIGXCPU too
    memory_bytes: int = 1 << 30  # RLIMIT_AS (virtual address space) per process
    # RLIMIT_NPROC for the sample's uid (or user namespace). RLIMIT_AS is per process and there is no cgroup
    # total, so a sample's worst case is max_processes * memory_bytes of address space: keep both modest.
    max_processes: int = 16
    max_open_files: int = 64
    max_file_bytes: int = 16 << 20  # RLIMIT_FSIZE: a bigger write gets SIGXFSZ / EFBIG
    max_output_bytes: int = 64 << 10  # kept per stream; the rest is read and discarded

    def __post_init__(self) -> None:
        if not self.timeout > 0:
            raise HelloraError(f"sandbox timeout must be > 0 seconds, got {self.timeout}")
        for name in ("memory_bytes", "max_processes", "max_open_files", "max_file_bytes", "max_output_bytes"):
            if int(getattr(self, name)) < 1:
                raise HelloraError(f"sandbox limit {name} must be >= 1, got {getattr(self, name)}")
        if self.cpu_seconds is not None and int(self.cpu_seconds) < 1:
            raise HelloraError(f"sandbox limit cpu_seconds must be >= 1, got {self.cpu_seconds}")

    def cpu_limit(self) -> int:
        return int(self.cpu_seconds) if self.cpu_seconds is not None else int(math.ceil(self.timeout)) + 1


def rlimits_for(limits: SandboxLimits, root: bool) -> dict[str, int]:
    """The rlimits preexec_fn sets, by `resource` name.

    RLIMIT_NPROC counts all processes of a uid, so it is set here only as root (it binds once the launcher
    switches to the sample's own uid); otherwise the launcher sets it, see `launcher.Launcher.limit_processes`.
    """
    out = {
        "RLIMIT_CPU": limits.cpu_limit(),
        "RLIMIT_AS": int(limits.memory_bytes),
        "RLIMIT_NOFILE": int(limits.max_open_files),
        "RLIMIT_FSIZE": int(limits.max_file_bytes),
        "RLIMIT_CORE": 0,
    }
    if root:
        out["RLIMIT_NPROC"] = int(limits.max_processes)
    return out


def make_preexec(rlimits: dict[str, int]) -> Callable[[], None]:
    """A `preexec_fn` that sets `rlimits` (soft = hard) in the child, already in its own session."""
    import resource  # POSIX only; imported here so that the package imports (and refuses) on Windows

    # Resolved now, in the parent: preexec_fn runs between fork and exec and must not import anything.
    limits = [(getattr(resource, name), value) for name, value in rlimits.items() if hasattr(resource, name)]

    def preexec() -> None:
        for res, value in limits:
            try:
                resource.setrlimit(res, (value, value))
            except (ValueError, OSError):
                pass  # reported by the launcher, which reads the limits back

    return preexec
