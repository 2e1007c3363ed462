"""A sample whose tests run outside it: `CheckedSample`, and the trusted checker process that runs them.

Why (issue 22): when a sample's own process runs the tests, whatever proves a pass (a nonce, an exit status, the
`assert`s themselves) lives in memory the sample can read and patch. Here the sandboxed process holds only the
prompt and the completion; the checker, a separate process started by the harness with no sandbox limits beyond
the sample's deadline, holds the tests and calls the candidate over two pipes with plain data (`checker.py`,
`plain_data.py`). The sample can only answer calls; the checker compares and decides.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
from dataclasses import dataclass
from typing import Any

from hellora.eval.sandbox.sources import checker_source


@dataclass(frozen=True)
class CheckedSample:
    """One HumanEval-style sample.

    `program`: what runs in the sandbox -- the prompt and the completion, never the tests.
    `entry_point`: the function the checker calls there. `prompt` and `test`: the benchmark's trusted code, run in
    the checker only (`test` defines `check(candidate)`; the prompt's helpers are used by some checks).
    `untrusted`: the model-written part, for the `suspect` scan (default: `program`).
    """

    program: str
    entry_point: str
    prompt: str
    test: str
    untrusted: str | None = None


class CheckerRun:
    """The checker process for one sample: started with its payload, watched by a thread, read for a verdict."""

    def __init__(self, python: str, sample: CheckedSample, calls_w: int, replies_r: int, cwd: str) -> None:
        payload = {"prompt": sample.prompt, "test": sample.test, "entry_point": sample.entry_point,
                   "calls_fd": calls_w, "replies_fd": replies_r}
        self.proc = subprocess.Popen(
            [python, "-I", "-S", "-B", "-c", checker_source()],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=cwd,
            env={"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"},
            pass_fds=(calls_w, replies_r), start_new_session=True,
        )
        self.done = threading.Event()
        self.stdout = b""
        self.stderr = b""
        self._thread = threading.Thread(target=self._talk, args=(json.dumps(payload).encode(),), daemon=True)
        self._thread.start()

    def _talk(self, payload: bytes) -> None:
        try:
            self.stdout, self.stderr = self.proc.communicate(payload)
        except (OSError, ValueError):
            pass
        finally:
            self.done.set()

    def finish(self, wait: float) -> bool:
        """Wait up to `wait` seconds for the verdict; kill the checker if it is not done. True if it finished."""
        finished = self.done.wait(max(0.0, wait))
        if not finished:
            try:
                os.killpg(self.proc.pid, 9)
            except (ProcessLookupError, PermissionError):
                pass
            self.done.wait(5.0)
        self._thread.join(5.0)
        return finished

    def verdict(self) -> dict[str, Any] | None:
        """The checker's verdict, or None when it gave none (a harness failure, or killed at the deadline)."""
        if self.proc.returncode != 0:
            return None
        try:
            verdict = json.loads(self.stdout.decode("utf-8", "replace").strip().splitlines()[-1])
        except (ValueError, IndexError):
            return None
        return verdict if isinstance(verdict, dict) and isinstance(verdict.get("passed"), bool) else None

    def stderr_tail(self) -> str:
        return self.stderr.decode("utf-8", "replace")[-500:]
