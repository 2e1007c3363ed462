"""What a sandboxed run reports: `SandboxResult` per sample, and which protections held across many."""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable

#: Boolean protections the launcher reports; any of them can be passed to `Sandbox(require=...)`.
PROTECTION_NAMES = (
    "new_session",
    "env_scrubbed",
    "rlimits",
    "user_namespace",
    "pid_namespace",
    "net_namespace",
    "mount_namespace",
    "ipc_namespace",
    "private_proc",
    "readonly_fs",
    "hidden_home",
    "uid_dropped",
    "capabilities_dropped",
    "no_new_privs",
    "exec_blocked",
)


@dataclass
class SandboxResult:
    """What happened to one sample. `passed` is the only thing a scorer should count."""

    passed: bool
    status: str  # "passed" | "failed" | "timeout" | "error"
    exit_code: int | None  # negative: killed by that signal (as in subprocess)
    stdout: str
    stderr: str
    stdout_truncated: bool
    stderr_truncated: bool
    stdout_bytes: int  # total bytes the sample wrote, including the discarded part
    stderr_bytes: int
    duration: float
    protections: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # why status is "error" (launcher or harness problem, not the sample's)
    leftovers_killed: int = 0  # processes of the sample still alive after it ended (all SIGKILLed)
    leftovers_surviving: int = 0  # must be 0: processes we failed to kill
    workdir: str = ""  # the (already deleted) temp directory, e.g. to search /proc for stragglers in tests
    suspect: bool = False  # the model-written part reaches for something a cheat needs (`suspect.py`)
    suspect_reasons: list[str] = field(default_factory=list)
    check_failure: str | None = None  # a checked sample: why the trusted checker failed it
    check_failure_kind: str | None = None  # assertion | exception | no_reply | not_plain | protocol

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        """One line for a results file: 'passed', 'timed out', 'failed: <last stderr line>' or 'error: ...'."""
        if self.status == "passed":
            return "passed"
        if self.status == "timeout":
            return "timed out"
        if self.status == "error":
            return f"error: {self.error}"
        last = next((ln for ln in reversed(self.stderr.strip().splitlines()) if ln.strip()), "")
        if self.check_failure and (self.check_failure_kind != "no_reply" or not last):
            return f"failed: {self.check_failure[:300]}"
        if not last:
            last = f"exit code {self.exit_code}" + ("" if self.exit_code else " without reaching the end of the checks")
        return f"failed: {last[:300]}"


def suspect_passes(results: Iterable[SandboxResult]) -> int:
    """How many passes came from samples flagged `suspect`: the part of pass@k to inspect by hand."""
    return sum(1 for r in results if r.passed and r.suspect)


def summarize_protections(results: Iterable[SandboxResult]) -> dict[str, Any]:
    """Which protections held for *every* run (a protection missing for one sample is reported False)."""
    summary: dict[str, Any] = {}
    notes: set[str] = set()
    n = 0
    for r in results:
        if not r.protections:
            continue
        n += 1
        for name in PROTECTION_NAMES:
            summary[name] = summary.get(name, True) and bool(r.protections.get(name))
        notes.update(r.protections.get("notes", []))
    if n:
        summary["platform"] = sys.platform
        summary["notes"] = sorted(notes)
    return summary
