"""Plain OS helpers of the sandbox launcher (`launcher.py`): /proc, mounts, permissions, exit statuses.

Loaded by the launcher from its own folder, before any sample code exists; standard library only, like the
launcher itself, and never imported by the harness except in tests.
"""

import os
import signal
import stat

TYPE_CHECKING = False  # the type checker reads the import below; the launcher never loads typing
if TYPE_CHECKING:
    from typing import NoReturn

# mount(2), unshare(2) and prctl(2) constants (linux/mount.h, linux/sched.h, linux/prctl.h)
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT = 1, 2, 4, 8, 32
MS_NOATIME, MS_NODIRATIME, MS_BIND, MS_REC = 1024, 2048, 4096, 16384
MS_PRIVATE, MS_RELATIME = 1 << 18, 1 << 21
OPT_FLAGS = {"nosuid": MS_NOSUID, "nodev": MS_NODEV, "noexec": MS_NOEXEC,
             "noatime": MS_NOATIME, "nodiratime": MS_NODIRATIME, "relatime": MS_RELATIME}
NEWNS, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET = 0x20000, 0x4000000, 0x8000000, 0x10000000, 0x20000000, 0x40000000
PR_SET_PDEATHSIG, PR_CAPBSET_DROP, PR_SET_SECUREBITS, PR_SET_NO_NEW_PRIVS = 1, 24, 28, 38
MNT_DETACH = 2


def holds_no_capabilities() -> bool:
    """True when this process's permitted and effective capability sets are empty (a plain uid's usual state)."""
    try:
        with open("/proc/self/status") as f:
            caps = dict(line.split(":", 1) for line in f if line.startswith(("CapPrm", "CapEff")))
    except OSError:
        return False
    return len(caps) == 2 and all(int(v, 16) == 0 for v in caps.values())


def user_tasks(uid: int) -> int:
    """Threads (tasks) of every process of `uid`: what Linux's RLIMIT_NPROC counts, not processes. A process
    that exits while /proc is read is skipped, not fatal (a harness with many torch threads churns)."""
    total = 0
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            if os.stat("/proc/" + d).st_uid == uid:
                total += len(os.listdir("/proc/%s/task" % d))
        except OSError:
            continue
    return total


def b(s: "str | None") -> "bytes | None":
    return None if s is None else s.encode()


def exit_like(status: int) -> "NoReturn":
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


def mountinfo() -> "list[tuple[str, list[str]]]":
    """(mount point, mount options) of every mount this process sees."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split(" ")
            mp = parts[4]
            for esc, ch in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"), ("\\134", "\\")):
                mp = mp.replace(esc, ch)
            out.append((mp, parts[5].split(",")))
    return out


def inside(path: str, top: str) -> bool:
    return path == top or path.startswith(top.rstrip("/") + "/")


def reachable_by_others(path: str) -> bool:
    """Can a uid that is neither owner nor group read and run the interpreter at `path`?"""
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
