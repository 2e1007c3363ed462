"""Run untrusted, model-written Python programs in a throw-away sandbox.

Why this exists: pass@k means *executing* what a model wrote. That code can loop forever, fork-bomb, eat
memory, delete or write files, open sockets, read secrets, kill its parent, leave detached children behind,
print gigabytes, or try to fake a pass by exiting early. None of that may reach the harness, the machine or
the score, so a sample never runs in the harness's own process. Each sample gets:

* a fresh process (`python -I -S -B`) in a new session, with an empty temp directory as cwd, HOME and
  TMPDIR, and a scrubbed environment (PATH, LANG and a marker only) -- `workdir.py`;
* resource limits set in the child before exec (`preexec_fn` + `resource.setrlimit`): CPU seconds, address
  space, processes, open files, file size, no core dumps -- `limits.py`;
* on Linux, a small trusted launcher (`launcher.py`, run before the sample's interpreter) that puts the
  sample into new pid, network, mount, IPC and UTS namespaces (plus a user namespace when not root), mounts
  a private /proc, remounts the whole filesystem read-only except the sample's own temp directory, hides
  home folders under empty tmpfs mounts, drops every capability, sets no_new_privs and -- when the harness
  is root -- switches to an unprivileged uid unique to this harness process and worker slot (`uids.py`);
* a wall-clock timeout, stdout/stderr read with a byte cap (the rest is read and discarded, never
  buffered), and, once the sample ends or times out, SIGKILL to its whole session, its pid namespace and
  every leftover process found in /proc (by session, process group, uid or environment marker) --
  `supervise.py`, `processes.py`;
* for HumanEval (`CheckedSample`), a pass only on the verdict of a separate trusted checker process that holds
  the tests and calls the candidate over two pipes with plain data: the sample's process holds neither the tests
  nor any proof of a pass, an always-equal object or a `str` subclass cannot cross the pipe, and a builtins patch
  stays in the sample -- `checked.py`, `checker.py`, `plain_data.py`, `driver.py`; the driver and the checker are
  handed over as `-c` source, so the install folder's permissions do not matter (`sources.py`); execve is
  forbidden in the sample (a seccomp filter); a self-test runs before scoring (`selftest.py`);
* a plain program (a string) "passes" if it exits 0 after its driver wrote a per-run nonce: generic runs only;
* a `suspect` flag on each result whose model-written code reads files, /proc or memory, or that returned an
  object imitating plain data: what the design cannot close (knowing the answers) -- `suspect.py`.

Protections are best effort by platform and privilege; which ones were active is recorded for every run
(`SandboxResult.protections`, `result.py`) and can be required (`Sandbox(require=...)`, `runner.py`). As
root, running without an unprivileged uid is refused by default. Windows is refused outright. See
docs/sandbox.md.
"""

from hellora.eval.sandbox.checked import CheckedSample
from hellora.eval.sandbox.limits import SandboxLimits
from hellora.eval.sandbox.result import PROTECTION_NAMES, SandboxResult, summarize_protections, suspect_passes
from hellora.eval.sandbox.runner import Sandbox, default_workers, run_program, run_programs

__all__ = [
    "PROTECTION_NAMES",
    "CheckedSample",
    "Sandbox",
    "SandboxLimits",
    "SandboxResult",
    "default_workers",
    "run_program",
    "run_programs",
    "summarize_protections",
    "suspect_passes",
]
