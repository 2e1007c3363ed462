"""Run untrusted, model-written Python programs in a throw-away sandbox.

Why this exists: pass@k means *executing* what a model wrote. That code can loop forever, fork-bomb, eat
memory, delete or write files, open sockets, read secrets, kill its parent, leave detached children behind,
print gigabytes, or try to fake a pass by exiting early. None of that may reach the harness, the machine or
the score, so a sample never runs in the harness's own process. Each sample gets:

* a fresh process (`python -I -S -B`) in a new session, with an empty temp directory as cwd, HOME and
  TMPDIR, and a scrubbed environment (PATH, LANG and a marker only);
* resource limits set in the child before exec (`preexec_fn` + `resource.setrlimit`): CPU seconds, address
  space, processes, open files, file size, no core dumps;
* on Linux, a small trusted launcher (`_LAUNCHER`, run before the sample's interpreter) that puts the sample
  into new pid, network, mount, IPC and UTS namespaces (plus a user namespace when not root), mounts a
  private /proc, remounts the whole filesystem read-only except the sample's own temp directory, hides
  home folders under empty tmpfs mounts, drops every capability, sets no_new_privs and -- when the harness
  is root -- switches to an unprivileged uid unique to this harness process and worker slot;
* a wall-clock timeout, stdout/stderr read with a byte cap (the rest is read and discarded, never
  buffered), and, once the sample ends or times out, SIGKILL to its whole session, its pid namespace and
  every leftover process found in /proc (by session, process group, uid or environment marker);
* a pass only if the program exits 0 *and* writes a per-run random nonce to a private result pipe from
  code appended after the test call, so `sys.exit(0)`, `os._exit(0)` or an `atexit` hook before or
  instead of the checks cannot fake a pass.

Protections are best effort by platform and privilege; which ones were active is recorded for every run
(`SandboxResult.protections`) and can be required (`Sandbox(require=...)`). As root, running without an
unprivileged uid is refused by default. Windows is refused outright. See docs/sandbox.md.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import selectors
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence

from hellora.utils.errors import HelloraError

__all__ = [
    "PROTECTION_NAMES",
    "Sandbox",
    "SandboxLimits",
    "SandboxResult",
    "default_workers",
    "run_program",
    "run_programs",
    "summarize_protections",
]

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
)

_RESULT_FD = 3  # the launcher moves the private result pipe here; the trailer writes the nonce to it
# Unprivileged uids for samples when the harness is root: one per (harness pid, worker slot), far above
# any real account, so RLIMIT_NPROC counts only one sample's processes and "kill everything with this uid"
# cannot hit anything else. pid < 2**22 and slot < 256 keep it below 0xB0000000.
_UID_BASE = 0x7000_0000
_MAX_SLOTS = 256
_FALLBACK_UID = 65534  # "nobody", if the kernel refuses our high uid (e.g. a container's restricted map)


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

    def cpu_limit(self) -> int:
        return int(self.cpu_seconds) if self.cpu_seconds is not None else int(math.ceil(self.timeout)) + 1


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
        if not last:
            last = f"exit code {self.exit_code}" + ("" if self.exit_code else " without reaching the end of the checks")
        return f"failed: {last[:300]}"


# ----------------------------------------------------------------------------------------------------------
# The launcher: trusted code that runs in the child process (already in its own session, with rlimits set
# by preexec_fn), builds the namespaces and mounts, drops privileges, reports what it achieved on the result
# pipe ("P <json>" or "E <json>") and then exec()s the sample's interpreter. It is passed with `-c`, so it
# needs no file of its own. Everything here is best effort except what `require` names.
# ----------------------------------------------------------------------------------------------------------
_LAUNCHER = r'''
import json, os, resource, sys
cfg = json.loads(sys.argv[1])
RES = 3
if cfg["result_fd"] != RES:
    os.dup2(cfg["result_fd"], RES)
    os.close(cfg["result_fd"])
P = {name: False for name in cfg["names"]}
P["new_session"] = os.getsid(0) == os.getpid()
P["env_scrubbed"] = True
P["platform"] = sys.platform
P["notes"] = []
work = cfg["workdir"]

def note(msg):
    P["notes"].append(msg)

def send(tag, obj):
    os.write(RES, (tag + " " + json.dumps(obj) + "\n").encode())

def fail(msg):
    try:
        send("E", {"error": msg, "protections": P})
    finally:
        os._exit(125)

libc = ctypes = None
if sys.platform.startswith("linux"):
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.unshare.argtypes = [ctypes.c_int]
        libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
        libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
        libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    except (OSError, AttributeError, ImportError) as e:
        libc = None
        note("no namespaces: libc not usable (%s)" % e)
else:
    note("no namespaces: not Linux")
if not cfg["namespaces"]:
    note("namespaces disabled by the caller")

def check(rc, what):
    if rc != 0:
        e = ctypes.get_errno()
        raise OSError(e, "%s: %s" % (what, os.strerror(e)))

def b(s):
    return None if s is None else s.encode()

def mount(src, target, fstype, flags, data=None):
    check(libc.mount(b(src), b(target), b(fstype), flags, b(data)), "mount " + target)

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC = 1024, 2048, 4096, 16384
MS_PRIVATE, MS_RELATIME = 1 << 18, 1 << 21
OPT_FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC,
             "noatime": MS_NOATIME, "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME}
NEWNS, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET = 0x20000, 0x4000000, 0x8000000, 0x10000000, 0x20000000, 0x40000000

root = os.geteuid() == 0
uid0, gid0 = os.geteuid(), os.getegid()
flags = 0
if libc is not None and cfg["namespaces"]:
    extra = 0 if root else NEWUSER  # root needs no user namespace (and drops to a plain uid instead)
    for want in (NEWNS | NEWNET | NEWPID | NEWIPC | NEWUTS | extra, NEWNET | extra):
        if libc.unshare(want) == 0:
            flags = want
            break
        note("unshare(0x%x) failed: %s" % (want, os.strerror(ctypes.get_errno())))
if flags & NEWUSER:
    try:
        with open("/proc/self/setgroups", "w") as f:
            f.write("deny")
        with open("/proc/self/uid_map", "w") as f:
            f.write("0 %d 1" % uid0)
        with open("/proc/self/gid_map", "w") as f:
            f.write("0 %d 1" % gid0)
    except OSError as e:
        note("user namespace id map: %s" % e)
P["user_namespace"] = bool(flags & NEWUSER)
P["net_namespace"] = bool(flags & NEWNET)
P["mount_namespace"] = bool(flags & NEWNS)
P["ipc_namespace"] = bool(flags & NEWIPC)
P["pid_namespace"] = bool(flags & NEWPID)

import signal

def exit_like(status):
    """Exit the way a child with wait status `status` did: same code, or killed by the same signal."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError, RuntimeError):
            pass
        os.kill(os.getpid(), sig)
        os._exit(128 + sig)
    os._exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1)

status_w = None
if flags & NEWPID:
    # Only children enter a new pid namespace, so fork: the child becomes its init (pid 1). The sample must
    # not be pid 1 itself -- the kernel drops default-action signals to an init (SIGXFSZ, SIGXCPU, a
    # self-sent SIGTERM ...), which would change how programs behave -- so init stays this trusted code,
    # forks the sample as pid 2, reaps, and reports the sample's wait status on a private pipe. When init
    # exits, the kernel SIGKILLs everything left in the namespace, detached or not.
    status_r, status_w = os.pipe()
    init = os.fork()
    if init:  # the supervisor, outside the namespace: relay the sample's fate to the harness
        os.close(status_w)
        for fd in (0, 1, 2, RES):
            os.close(fd)
        while True:
            try:
                _, status = os.waitpid(init, 0)
                break
            except InterruptedError:
                continue
        reported = os.read(status_r, 32).strip()
        exit_like(int(reported) if reported.isdigit() else status)
    os.close(status_r)
    # If the supervisor dies (e.g. the harness SIGKILLs the session), the namespace dies with it.
    libc.prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGKILL

def mountinfo():
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split(" ")
            mp = parts[4]
            for esc, ch in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
                mp = mp.replace(esc, ch)
            out.append((mp, parts[5].split(",")))
    return out

def inside(path, top):
    return path == top or path.startswith(top.rstrip("/") + "/")

if flags & NEWNS:
    os.umask(0o022)
    try:
        # Without this, mounts below could propagate back to the host's mount namespace: never go on.
        mount(None, "/", None, MS_REC | MS_PRIVATE)
    except OSError as e:
        note("mounts skipped, cannot make / private: %s" % e)
    else:
        if flags & NEWPID:
            try:
                mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
                P["private_proc"] = True
            except OSError as e:
                note("private /proc: %s" % e)
        try:
            mount(work, work, None, MS_BIND | MS_REC)  # its own mount: stays writable below
            hidden = []
            for i, top in enumerate(cfg["hide"]):
                keeps = [k for k in cfg["keep"] if inside(k, top)]
                if top in keeps:
                    note("not hiding %s: the interpreter lives there" % top)
                    continue
                try:
                    staged = []
                    for j, keep in enumerate(keeps):  # e.g. a pyenv python under /root stays reachable
                        st = os.path.join(work, ".hellora-keep-%d-%d" % (i, j))
                        os.mkdir(st, 0o700)
                        mount(keep, st, None, MS_BIND | MS_REC)
                        staged.append((keep, st))
                    mount("tmpfs", top, "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=755")
                    for keep, st in staged:
                        os.makedirs(keep, 0o755, exist_ok=True)
                        mount(st, keep, None, MS_BIND | MS_REC)
                        check(libc.umount2(b(st), 2), "umount " + st)  # MNT_DETACH
                        os.rmdir(st)
                    hidden.append(top)
                except OSError as e:
                    note("hiding %s: %s" % (top, e))
            P["hidden_home"] = len(hidden) == len(cfg["hide"])
            P["hidden_paths"] = hidden
            failed = []
            for mp, opts in mountinfo():
                if inside(mp, work):
                    continue
                fl = MS_REMOUNT | MS_BIND | MS_RDONLY
                for o in opts:
                    fl |= OPT_FLAGS.get(o, 0)
                try:
                    mount(None, mp, None, fl)
                except OSError as e:
                    if e.errno != 2:  # ENOENT: under a hidden folder, unreachable anyway
                        failed.append(str(e))
            P["readonly_fs"] = not failed
            if failed:
                note("read-only remount failed for %d mounts: %s" % (len(failed), "; ".join(failed[:5])))
            mount(None, work, None, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV)
        except OSError as e:
            note("mount setup: %s" % e)

if status_w is not None:
    sample = os.fork()
    if sample:  # init: keep root/capabilities (so the sample cannot touch it), reap until the sample exits
        for fd in (0, 1, 2, RES):
            os.close(fd)
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE, signal.SIGUSR1, signal.SIGUSR2):
            signal.signal(sig, signal.SIG_IGN)
        while True:
            try:
                pid, status = os.wait()
            except InterruptedError:
                continue
            except ChildProcessError:
                os._exit(1)
            if pid == sample:
                os.write(status_w, str(status).encode())
                os._exit(0)
    os.close(status_w)

# Privileges (in the sample's process only): no capabilities survive exec, no setuid gains, and as root a
# plain, unique uid.
if libc is not None:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            last_cap = int(f.read())
        for cap in range(last_cap + 1):
            check(libc.prctl(24, cap, 0, 0, 0), "PR_CAPBSET_DROP")
        if flags & NEWUSER:  # SECBIT_NOROOT | SECBIT_NOROOT_LOCKED: ns-root gets no caps on exec
            check(libc.prctl(28, 3, 0, 0, 0), "PR_SET_SECUREBITS")
        P["capabilities_dropped"] = True
    except (OSError, ValueError) as e:
        note("capabilities: %s" % e)

def reachable_by_others(path):
    """Can a uid that is neither owner nor group read and run the interpreter at `path`?"""
    import stat
    while True:
        try:
            mode = os.stat(path).st_mode
        except OSError:
            return False
        if not mode & stat.S_IXOTH:
            return False
        parent = os.path.dirname(path)
        if parent == path:
            return True
        path = parent

if root and cfg["uid"] is not None and not all(reachable_by_others(k) for k in cfg["keep"] + [cfg["python"]]):
    note("uid not dropped: the interpreter %s is not reachable by an unprivileged uid (private home folder "
         "and no mount namespace to expose it)" % cfg["python"])
elif root and cfg["uid"] is not None:
    for uid in (cfg["uid"], 65534):
        try:
            os.chown(work, uid, uid)
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            break
        except OSError as e:
            note("setuid(%d): %s" % (uid, e))
    P["uid_dropped"] = os.getresuid() == (uid, uid, uid) and uid != 0
    if P["uid_dropped"]:
        P["capabilities_dropped"] = True  # a non-root uid keeps no capabilities across exec
elif not root:
    note("not root: the sample runs as the harness's own uid%s"
         % (" (mapped to root inside its user namespace, with no capabilities)" if flags & NEWUSER else ""))
P["uid"] = os.getuid() if root else uid0
if libc is not None:
    P["no_new_privs"] = libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
    if not P["no_new_privs"]:
        note("no_new_privs: %s" % os.strerror(ctypes.get_errno()))

# RLIMIT_NPROC is per user. As root the harness set it in preexec_fn (it binds once we are a plain uid).
# Otherwise set it here: inside a user namespace it counts only this sample; without one, only as a
# ceiling above what the user already runs.
if not root and hasattr(resource, "RLIMIT_NPROC"):
    n = cfg["nproc"]
    if not flags & NEWUSER:
        try:
            n += sum(1 for d in os.listdir("/proc") if d.isdigit() and os.stat("/proc/" + d).st_uid == uid0)
        except OSError:
            n = None
            note("RLIMIT_NPROC not set: cannot count this user's processes")
    if n is not None:
        try:
            resource.setrlimit(resource.RLIMIT_NPROC, (n, n))
        except (ValueError, OSError) as e:
            note("RLIMIT_NPROC: %s" % e)

got = {}
for name, want in list(cfg["rlimits"].items()) + [("RLIMIT_NPROC", None)]:
    lim = getattr(resource, name, None)
    got[name] = list(resource.getrlimit(lim)) if lim is not None else None
P["rlimit_values"] = got
P["rlimits"] = all(got.get(name) is not None and 0 <= got[name][1] <= want
                   for name, want in cfg["rlimits"].items() if name != "RLIMIT_NPROC" or root)
os.umask(0o077)
try:
    os.chdir(work)  # re-enter through the new bind mount (the old cwd now sits on the read-only one)
except OSError as e:
    fail("the sample cannot enter its directory %s (%s): put tmp_root somewhere an unprivileged uid can reach"
         % (work, e))
missing = [name for name in cfg["require"] if not P.get(name)]
if missing:
    fail("required sandbox protections not active: %s (%s)" % (", ".join(missing), "; ".join(P["notes"])))
send("P", P)
try:
    os.execve(cfg["python"], [cfg["python"], "-I", "-S", "-B", cfg["program"]], cfg["env"])
except OSError as e:
    fail("cannot start the sample's interpreter %s: %s" % (cfg["python"], e))
'''


class _CappedBuffer:
    """Keep the first `cap` bytes of a stream, count the rest and throw it away."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.data = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.cap - len(self.data)
        if room > 0:
            self.data += chunk[:room]

    @property
    def truncated(self) -> bool:
        return self.total > len(self.data)

    def text(self) -> str:
        return bytes(self.data).decode("utf-8", "replace")


class _SlotPool:
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


_SLOTS = _SlotPool(_MAX_SLOTS)


def _check_platform(os_name: str | None = None) -> None:
    """Refuse non-POSIX systems (Windows): there is no way to give a sample the limits it must run under."""
    os_name = os.name if os_name is None else os_name
    if os_name != "posix":
        raise HelloraError(
            f"the code-execution sandbox is not supported on {os_name}/{sys.platform}: it needs POSIX process groups and "
            "resource limits, and running model-written code without them is refused (see docs/sandbox.md)"
        )


def _interpreter_paths(python: str) -> list[str]:
    """Folders the sample's interpreter needs; they stay visible even if they sit in a hidden home."""
    paths = {os.path.dirname(os.path.dirname(python))}  # <prefix>/bin/python -> <prefix> (has lib/ too)
    if os.path.realpath(sys.executable) == python:
        paths |= {os.path.realpath(sys.base_prefix), os.path.realpath(sys.base_exec_prefix)}
    outer = []
    for p in sorted(paths, key=len):
        if not any(p == o or p.startswith(o.rstrip("/") + "/") for o in outer):
            outer.append(p)
    return outer


def _default_hide_paths(workdir_root: str) -> list[str]:
    """Home folders to cover with an empty tmpfs: the harness's HOME, /root and /home (where they exist)."""
    out = []
    for p in (os.path.expanduser("~"), "/root", "/home"):
        p = os.path.realpath(p)
        if p == "/" or not os.path.isdir(p) or p in out:
            continue
        # Never hide the folder the samples' temp directories live in.
        if workdir_root == p or workdir_root.startswith(p.rstrip("/") + "/"):
            continue
        out.append(p)
    return out


def _read_stat(pid: str) -> tuple[str, int, int] | None:
    """(state, pgrp, session) of a process from /proc, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    rest = raw[raw.rfind(b")") + 2 :].split()  # comm may contain spaces and parentheses
    try:
        return rest[0].decode(), int(rest[2]), int(rest[3])
    except (IndexError, ValueError):
        return None


def _find_sample_processes(leader: int | None, uid: int | None, marker: bytes) -> list[int]:
    """Live processes that belong to a sample: same session/process group as its launcher (while that pid is
    still ours), its private uid, or the run's marker in their environment. Zombies are already dead."""
    if not os.path.isdir("/proc"):
        return []
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        st = _read_stat(entry)
        if st is None or st[0] in ("Z", "X"):
            continue
        _, pgrp, session = st
        hit = leader is not None and leader in (pgrp, session)
        if not hit and uid is not None:
            try:
                hit = os.stat(f"/proc/{entry}").st_uid == uid
            except OSError:
                continue
        if not hit:
            try:
                with open(f"/proc/{entry}/environ", "rb") as f:
                    hit = marker in f.read()
            except OSError:
                continue
        if hit:
            found.append(int(entry))
    return found


def _kill_sample(leader: int | None, uid: int | None, marker: bytes) -> tuple[int, int]:
    """SIGKILL a sample's whole process tree; return (extra processes killed, processes still alive).

    Killing the session's process group takes the launcher down, and with it (PR_SET_PDEATHSIG) the pid
    namespace and everything in it. The /proc sweep catches whatever escaped the group by setsid() when
    there is no pid namespace, and we repeat until nothing is left: a fork loop can race a single pass.
    """
    if leader is not None:
        try:
            os.killpg(leader, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    killed = 0
    victims: list[int] = []
    for _ in range(400):
        victims = _find_sample_processes(leader, uid, marker)
        victims = [v for v in victims if v != leader]  # the launcher itself is our child: reaped by wait()
        if not victims:
            break
        for v in victims:
            try:
                os.kill(v, signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.005)
    return killed, len(victims)


def _exited(proc: "subprocess.Popen[bytes]") -> bool:
    """Has our child exited? On Linux checked without reaping it, so its pid (= the session id we sweep
    /proc for) cannot be reused by an unrelated process before the sweep is done. Elsewhere (no waitid, and
    no /proc sweep either) Popen.poll() reaps it, which only leaves killpg() a tiny pid-reuse window."""
    if not hasattr(os, "waitid") or not hasattr(os, "WNOWAIT"):
        return proc.poll() is not None
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _rmtree_force(path: str) -> None:
    """Remove a sample's directory even if it chmod-ed things to 000 (root needs no help; others do)."""

    def retry(func, p, _exc):  # noqa: ANN001
        try:
            os.chmod(os.path.dirname(p), stat.S_IRWXU)
            if os.path.isdir(p) and not os.path.islink(p):
                os.chmod(p, stat.S_IRWXU)
            func(p)
        except OSError:
            pass

    if sys.version_info >= (3, 12):
        shutil.rmtree(path, onexc=retry)
    else:
        shutil.rmtree(path, onerror=retry)


class Sandbox:
    """Runs programs, one fresh sandboxed process tree each. Thread-safe; `run_many` runs a worker pool.

    `require`: protection names (see PROTECTION_NAMES) that must be active or the sample is not run
    (status "error"). The default (None) requires "uid_dropped" when the harness is root -- model code is
    never run as root -- and nothing otherwise; pass `()` to allow anything.
    `namespaces=False` skips the Linux namespace/mount layer (for debugging or comparison only).
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

    # -- one sample --------------------------------------------------------------------------------------
    def run(self, program: str) -> SandboxResult:
        """Run `program` (Python source) to completion or timeout and report what happened."""
        slot = _SLOTS.acquire()  # its own uid while it runs (as root), shared with no concurrent sample
        try:
            return self._run(program, slot)
        finally:
            _SLOTS.release(slot)

    def run_many(
        self, programs: Sequence[str], *, workers: int | None = None, progress: bool = True, desc: str = "sandbox"
    ) -> list[SandboxResult]:
        """Run many programs on a small thread pool (each thread waits on its own subprocess); results keep
        the input order. One sample's failure, crash or timeout never stops the others."""
        from tqdm.auto import tqdm

        workers = max(1, min(int(workers or default_workers()), _MAX_SLOTS, max(1, len(programs))))
        results: list[SandboxResult | None] = [None] * len(programs)
        with tqdm(total=len(programs), desc=desc, disable=not progress, unit="sample") as bar:
            lock = threading.Lock()

            def one(i: int) -> None:
                results[i] = self.run(programs[i])
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
    def _rlimits(self) -> dict[str, int]:
        lim = self.limits
        out = {
            "RLIMIT_CPU": lim.cpu_limit(),
            "RLIMIT_AS": int(lim.memory_bytes),
            "RLIMIT_NOFILE": int(lim.max_open_files),
            "RLIMIT_FSIZE": int(lim.max_file_bytes),
            "RLIMIT_CORE": 0,
        }
        if self.root:
            out["RLIMIT_NPROC"] = int(lim.max_processes)
        return out

    def _run(self, program: str, slot: int) -> SandboxResult:
        import resource  # POSIX only; imported here so that the module imports (and refuses) on Windows

        lim = self.limits
        nonce = secrets.token_hex(16)
        marker = secrets.token_hex(12)
        uid = _UID_BASE + (os.getpid() << 8) + slot if self.root else None
        workdir = tempfile.mkdtemp(prefix="hellora-sbx-", dir=self.tmp_root)
        program_path = os.path.join(workdir, "main.py")
        trailer = (
            "\n\n# hellora sandbox: reached only if everything above ran to completion\n"
            f'__import__("os").write({_RESULT_FD}, b"{nonce}\\n")\n'
        )
        with open(program_path, "w", encoding="utf-8") as f:
            f.write(program + trailer)
        os.chmod(program_path, 0o644)
        env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": workdir, "TMPDIR": workdir,
               "HELLORA_SANDBOX": marker}
        hide = self.hide_paths if self.hide_paths is not None else _default_hide_paths(self.tmp_root)
        rlimits = self._rlimits()
        cfg = {
            "workdir": workdir,
            "program": program_path,
            "python": self.python,
            "env": env,
            "namespaces": self.namespaces,
            "hide": [os.path.realpath(p) for p in hide],
            "keep": _interpreter_paths(self.python),
            "uid": uid,
            "nproc": int(lim.max_processes),
            "rlimits": rlimits,
            "require": list(self.require),
            "names": list(PROTECTION_NAMES),
            "result_fd": -1,
        }
        # Resolved now, in the parent: preexec_fn runs between fork and exec and must not import anything.
        limits = [(getattr(resource, name), value) for name, value in rlimits.items() if hasattr(resource, name)]

        def preexec() -> None:  # runs in the child, already in its own session (start_new_session=True)
            for res, value in limits:
                try:
                    resource.setrlimit(res, (value, value))
                except (ValueError, OSError):
                    pass  # reported by the launcher, which reads the limits back

        read_fd, write_fd = os.pipe()
        cfg["result_fd"] = write_fd
        out = _CappedBuffer(lim.max_output_bytes)
        err = _CappedBuffer(lim.max_output_bytes)
        res = _CappedBuffer(64 << 10)
        start = time.monotonic()
        proc = None
        timed_out = False
        killed = surviving = 0
        try:
            try:
                proc = subprocess.Popen(
                    [self.python, "-I", "-S", "-B", "-c", _LAUNCHER, json.dumps(cfg)],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    cwd=workdir,
                    env=env,
                    pass_fds=(write_fd,),
                    start_new_session=True,
                    preexec_fn=preexec,
                )
            except (OSError, subprocess.SubprocessError) as e:
                return self._error_result(f"cannot start sandbox process: {e}", start, workdir)
            finally:
                os.close(write_fd)
            timed_out, killed, surviving = self._collect(proc, uid, marker.encode(), start, read_fd, out, err, res)
        finally:
            os.close(read_fd)
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
            _rmtree_force(workdir)
        duration = time.monotonic() - start
        return self._make_result(proc.returncode, nonce, timed_out, out, err, res, duration, killed, surviving, workdir)

    def _collect(self, proc, uid, marker, start, read_fd, out, err, res) -> tuple[bool, int, int]:  # noqa: ANN001
        """Read the three pipes with caps until the sample is done (or the deadline), then destroy its tree."""
        deadline = start + self.limits.timeout
        sel = selectors.DefaultSelector()
        buffers = {proc.stdout.fileno(): out, proc.stderr.fileno(): err, read_fd: res}
        for fd in buffers:
            sel.register(fd, selectors.EVENT_READ)
        timed_out = False
        swept = False
        killed = 0
        drain_until = None
        try:
            while sel.get_map():
                now = time.monotonic()
                if not swept and now >= deadline:
                    timed_out = True
                    break
                if drain_until is not None and now >= drain_until:
                    break  # a straggler we could not kill holds a pipe: stop waiting for EOF
                limit = (drain_until if swept else deadline) - now
                for key, _ in sel.select(timeout=max(0.0, min(limit, 0.05))):
                    try:
                        chunk = os.read(key.fd, 1 << 16)
                    except OSError:
                        chunk = b""
                    if chunk:
                        buffers[key.fd].add(chunk)
                    else:
                        sel.unregister(key.fd)
                if not swept and _exited(proc):
                    # The sample's main process is done: nothing it started may outlive it.
                    extra, _ = _kill_sample(proc.pid, uid, marker)
                    killed += extra
                    swept = True
                    drain_until = time.monotonic() + 2.0
        finally:
            sel.close()
        # All pipes closed: the launcher itself is a moment from exiting. Let it (its exit status is the
        # sample's), but never past the deadline.
        while not timed_out and not _exited(proc):
            if time.monotonic() >= deadline:
                timed_out = True
            else:
                time.sleep(0.002)
        extra, surviving = _kill_sample(proc.pid, uid, marker)
        proc.wait()
        # The launcher is reaped, so its pid may be reused: sweep by uid and marker only.
        extra2, surviving = _kill_sample(None, uid, marker)
        return timed_out, killed + extra + extra2, surviving

    def _error_result(self, msg: str, start: float, workdir: str) -> SandboxResult:
        return SandboxResult(False, "error", None, "", "", False, False, 0, 0, time.monotonic() - start,
                             {}, msg, 0, 0, workdir)

    def _make_result(self, code, nonce, timed_out, out, err, res, duration, killed, surviving, workdir):  # noqa: ANN001
        protections: dict[str, Any] = {}
        error = None
        nonce_seen = False
        for line in res.text().splitlines():
            if line == nonce:
                nonce_seen = True
            elif line.startswith(("P ", "E ")) and not protections and error is None:
                # Only the first report counts: it is written by the launcher before the sample starts.
                try:
                    payload = json.loads(line[2:])
                except ValueError:
                    continue
                if line[0] == "P":
                    protections = payload
                else:
                    error = str(payload.get("error"))
                    protections = payload.get("protections", {})
        if protections:
            protections["session_kill"] = True
            protections["output_cap_bytes"] = self.limits.max_output_bytes
        if error is None and not protections and not timed_out:
            error = f"sandbox launcher failed before starting the sample (exit code {code}): {err.text()[-500:]}"
        if error is not None:
            status = "error"
        elif timed_out:
            status = "timeout"
        elif nonce_seen and code == 0:
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
