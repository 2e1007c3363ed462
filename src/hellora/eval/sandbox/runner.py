"""`Sandbox`: runs one program, or many on a thread pool, each in a fresh sandboxed process tree.

Per sample: a private temp dir and scrubbed env (`workdir.py`), rlimits set in `preexec_fn` (`limits.py`),
the trusted launcher (`launcher.py`, run by path with `python -I -S -B`) that builds namespaces and drops
privileges before exec()ing the sample, capped reading of its pipes and the final kill sweep
(`supervise.py`, `processes.py`), the trusted driver that runs the program with execve forbidden and proves it ran
to the end with a nonce the program cannot read (`driver.py`, `protocol.py`), and the scan that flags completions
reaching for the harness's internals (`suspect.py`).
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterable, Sequence

from hellora.eval.sandbox.checked import CheckedSample, CheckerRun
from hellora.eval.sandbox.limits import SandboxLimits, make_preexec, rlimits_for
from hellora.eval.sandbox.protocol import read_report
from hellora.eval.sandbox.result import PROTECTION_NAMES, SandboxResult
from hellora.eval.sandbox.sources import driver_source
from hellora.eval.sandbox.suspect import suspect_reasons
from hellora.eval.sandbox.supervise import SampleEnd, SampleStreams, collect
from hellora.eval.sandbox.uids import FALLBACK_UID, MAX_SLOTS, SLOTS, sample_uid
from hellora.eval.sandbox.workdir import (
    default_hide_paths,
    interpreter_paths,
    make_workdir,
    remove_workdir,
    sample_env,
    write_program,
)
from hellora.utils.errors import HelloraError

#: The launcher runs by path, as the harness's own user (who could import this package, so can read it); the
#: driver and the checker are handed over as source (`sources.py`).
LAUNCHER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "launcher.py")


def _check_platform(os_name: str | None = None) -> None:
    """Refuse non-POSIX systems (Windows): there is no way to give a sample the limits it must run under."""
    os_name = os.name if os_name is None else os_name
    if os_name != "posix":
        raise HelloraError(
            f"the code-execution sandbox is not supported on {os_name}/{sys.platform}: it needs POSIX process groups and "
            "resource limits, and running model-written code without them is refused (see docs/sandbox.md)"
        )


class Sandbox:
    """Runs programs, one fresh sandboxed process tree each. Thread-safe; `run_many` runs a worker pool.

    `require`: protection names (see PROTECTION_NAMES) that must be active or the sample is not run
    (status "error"). The default (None) requires "uid_dropped" when the harness is root -- model code is
    never run as root -- and nothing otherwise; pass `()` to allow anything.
    `namespaces=False` skips the Linux namespace/mount layer (for debugging or comparison only).
    `hide_files`: files the sample must not read (the benchmark's problems file), covered by /dev/null in its
    mount namespace.
    """

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        *,
        require: Iterable[str] | None = None,
        namespaces: bool = True,
        hide_paths: Sequence[str] | None = None,
        python: str | None = None,
        tmp_root: str | None = None,
        hide_files: Sequence[str] = (),
    ) -> None:
        _check_platform()
        self.limits = limits or SandboxLimits()
        self.root = os.geteuid() == 0
        if require is None:
            require = ("uid_dropped",) if self.root else ()
        self.require = tuple(require)
        unknown = [r for r in self.require if r not in PROTECTION_NAMES]
        if unknown:
            raise HelloraError(f"unknown sandbox protection(s) in require: {unknown}; known: {list(PROTECTION_NAMES)}")
        self.namespaces = namespaces
        self.python = os.path.realpath(python or sys.executable)
        if not os.access(self.python, os.X_OK):
            raise HelloraError(f"sandbox python interpreter not executable: {self.python}")
        self.tmp_root = os.path.realpath(tmp_root or tempfile.gettempdir())
        self.hide_paths = list(hide_paths) if hide_paths is not None else None
        self.hide_files = [os.path.realpath(p) for p in hide_files]

    # -- one sample --------------------------------------------------------------------------------------
    def run(self, program: str | CheckedSample, untrusted: str | None = None) -> SandboxResult:
        """Run one sample to completion or timeout and report what happened.

        A `CheckedSample` (HumanEval scoring) passes only on the trusted checker's verdict: its tests never enter
        the sandbox. A plain `program` (Python source) "passes" if it ran to its end and exited 0 -- a generic
        run, forgeable by a program that reads its own memory, never used for scores.
        `untrusted`: the part a model wrote, scanned for `suspect` constructs (default: the sample's own
        `untrusted`, else the whole program)."""
        checked = program if isinstance(program, CheckedSample) else None
        source = checked.program if checked is not None else str(program)
        if untrusted is None:
            untrusted = checked.untrusted if checked is not None and checked.untrusted is not None else source
        slot = SLOTS.acquire()  # its own uid while it runs (as root), shared with no concurrent sample
        try:
            result = self._run(source, slot, checked)
        finally:
            SLOTS.release(slot)
        result.suspect_reasons = sorted(set(suspect_reasons(untrusted)) | set(result.suspect_reasons))
        result.suspect = bool(result.suspect_reasons)
        return result

    def run_many(
        self, programs: Sequence[str | CheckedSample], *, workers: int | None = None, progress: bool = True, desc: str = "sandbox",
        untrusted: Sequence[str] | None = None,
    ) -> list[SandboxResult]:
        """Run many programs on a small thread pool (each thread waits on its own subprocess); results keep
        the input order. One sample's failure, crash or timeout never stops the others. `untrusted[i]` is what
        `run` scans for program i (default: the whole program)."""
        from tqdm.auto import tqdm

        workers = max(1, min(int(workers or default_workers()), MAX_SLOTS, max(1, len(programs))))
        results: list[SandboxResult | None] = [None] * len(programs)
        with tqdm(total=len(programs), desc=desc, disable=not progress, unit="sample") as bar:
            lock = threading.Lock()

            def one(i: int) -> None:
                results[i] = self.run(programs[i], None if untrusted is None else untrusted[i])
                with lock:
                    bar.update(1)

            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hellora-sandbox") as pool:
                for fut in [pool.submit(one, i) for i in range(len(programs))]:
                    fut.result()
        return [r for r in results if r is not None]

    def probe(self) -> dict[str, Any]:
        """Run an empty program and return the protections that were active (what `run` would get)."""
        return self.run("pass\n").protections

    # -- internals ---------------------------------------------------------------------------------------
    def _run(self, program: str, slot: int, checked: CheckedSample | None = None) -> SandboxResult:
        lim = self.limits
        nonce = secrets.token_hex(16)
        marker = secrets.token_hex(12)
        uid = sample_uid(slot) if self.root else None
        workdir = make_workdir(self.tmp_root)
        ours: list[int] = []  # pipe ends the harness keeps (closed at the end)
        theirs: list[int] = []  # pipe ends handed to the sample (closed once it started)
        checker_ends: list[int] = []  # pipe ends handed to the checker (closed once it started)
        try:  # until the pipes exist, nothing below removes the workdir: do it here on failure
            program_path = write_program(workdir, program)
            env = sample_env(workdir, marker)
            hide = self.hide_paths if self.hide_paths is not None else default_hide_paths(self.tmp_root)
            rlimits = rlimits_for(lim, self.root)
            preexec = make_preexec(rlimits)
            read_fd, write_fd = os.pipe()
            ours.append(read_fd)
            theirs.append(write_fd)
            if checked is None:
                nonce_r, nonce_w = os.pipe()  # the nonce waits in a pipe: never in a file, argv or the environment
                os.write(nonce_w, nonce.encode())
                os.close(nonce_w)
                theirs.append(nonce_r)
                driver_args: list[str] = []
            else:
                calls_r, calls_w = os.pipe()
                replies_r, replies_w = os.pipe()
                theirs += [calls_r, replies_w]
                checker_ends += [calls_w, replies_r]
                driver_args = ["--serve", checked.entry_point]
            cfg = {
                "workdir": workdir,
                "program": program_path,
                "driver_source": driver_source(),
                "driver_args": driver_args,
                "python": self.python,
                "env": env,
                "namespaces": self.namespaces,
                "hide": [os.path.realpath(p) for p in hide],
                "hide_files": [p for p in self.hide_files if os.path.isfile(p)],
                "keep": interpreter_paths(self.python),
                "uid": uid,
                "fallback_uid": FALLBACK_UID,
                "nproc": int(lim.max_processes),
                "rlimits": rlimits,
                "require": list(self.require),
                "names": list(PROTECTION_NAMES),
                "fds": theirs,
            }
        except BaseException:
            for fd in ours + theirs + checker_ends:
                os.close(fd)
            remove_workdir(workdir)
            raise
        streams = SampleStreams.capped(lim.max_output_bytes)
        start = time.monotonic()
        proc = None
        checker: CheckerRun | None = None
        ended = SampleEnd(False, 0, 0)
        try:
            try:
                proc = subprocess.Popen(
                    [self.python, "-I", "-S", "-B", LAUNCHER, json.dumps(cfg)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    cwd=workdir,
                    env=env,
                    pass_fds=tuple(theirs),
                    start_new_session=True,
                    preexec_fn=preexec,
                )
                if checked is not None:
                    checker = CheckerRun(self.python, checked, checker_ends[0], checker_ends[1], self.tmp_root)
            except (OSError, subprocess.SubprocessError) as e:
                return self._error_result(f"cannot start sandbox process: {e}", start, workdir)
            finally:
                for fd in theirs + checker_ends:
                    os.close(fd)
            ended = collect(
                proc, read_fd, streams, deadline=start + lim.timeout, uid=uid, marker=marker.encode(),
                stop=None if checker is None else checker.done.is_set,
            )
            if checker is not None and not checker.finish(start + lim.timeout + 1.0 - time.monotonic()):
                ended = ended._replace(timed_out=True)
        finally:
            for fd in ours:
                os.close(fd)
            if checker is not None:
                checker.finish(0.0)
            if proc is not None:
                for stream in (proc.stdout, proc.stderr):
                    if stream is not None:
                        stream.close()
                if proc.returncode is None:
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
                    proc.wait()
            remove_workdir(workdir)
        duration = time.monotonic() - start
        return self._make_result(proc.returncode, nonce, streams, ended, duration, workdir, checker)

    def _error_result(self, msg: str, start: float, workdir: str) -> SandboxResult:
        return SandboxResult(False, "error", None, "", "", False, False, 0, 0, time.monotonic() - start,
                             {}, msg, 0, 0, workdir)

    def _make_result(self, code: int | None, nonce: str, streams: SampleStreams, ended: SampleEnd, duration: float,
                     workdir: str, checker: CheckerRun | None = None) -> SandboxResult:
        out, err = streams.out, streams.err
        timed_out, killed, surviving = ended
        report = read_report(streams.res.text(), nonce)
        protections, error = report.protections, report.error
        if protections:
            protections["session_kill"] = True
            protections["output_cap_bytes"] = self.limits.max_output_bytes
        if error is None and not protections and not timed_out:
            error = f"sandbox launcher failed before starting the sample (exit code {code}): {err.text()[-500:]}"
        if error is None and "exec_blocked" in self.require and not protections.get("exec_blocked"):
            error = "required sandbox protection not active: exec_blocked (%s)" % "; ".join(protections.get("notes", []))
        verdict = checker.verdict() if checker is not None else None
        if checker is not None and verdict is None and error is None and not timed_out:
            error = (f"the HumanEval checker gave no verdict (exit code {checker.proc.returncode}): "
                     f"{checker.stderr_tail()}")
        if error is not None:
            status = "error"
        elif verdict is not None and verdict["passed"]:
            status = "passed"
        elif timed_out:
            status = "timeout"
        elif checker is None and report.nonce_seen and code == 0:
            status = "passed"
        else:
            status = "failed"
        if surviving:
            error = (error + "; " if error else "") + f"{surviving} sample processes could not be killed"
        return SandboxResult(
            passed=status == "passed",
            status=status,
            exit_code=code,
            stdout=out.text(),
            stderr=err.text(),
            stdout_truncated=out.truncated,
            stderr_truncated=err.truncated,
            stdout_bytes=out.total,
            stderr_bytes=err.total,
            duration=duration,
            protections=protections,
            error=error,
            leftovers_killed=killed,
            leftovers_surviving=surviving,
            workdir=workdir,
            check_failure=None if verdict is None else verdict.get("failure"),
            check_failure_kind=None if verdict is None else verdict.get("failure_kind"),
            suspect_reasons=[] if verdict is None else [str(r) for r in verdict.get("suspect_reasons", [])],
        )


def default_workers() -> int:
    """Samples mostly wait on process start-up, so a couple more workers than cores keeps them busy."""
    return max(2, min(8, (os.cpu_count() or 2) + 2))


def run_program(program: str, *, limits: SandboxLimits | None = None, **kwargs: Any) -> SandboxResult:
    """Run one program in a fresh `Sandbox(limits, **kwargs)`."""
    return Sandbox(limits, **kwargs).run(program)


def run_programs(
    programs: Sequence[str],
    *,
    limits: SandboxLimits | None = None,
    workers: int | None = None,
    progress: bool = True,
    **kwargs: Any,
) -> list[SandboxResult]:
    """Run many programs in parallel sandboxes; results in input order."""
    return Sandbox(limits, **kwargs).run_many(programs, workers=workers, progress=progress)
