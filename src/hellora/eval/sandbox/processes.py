"""Finding and killing a sample's processes, wherever they went.

A sample may fork, double-fork, setsid() away from its process group or ignore signals. Once it ends or
times out, nothing it started may survive: its session is SIGKILLed, then /proc is swept for anything
still tied to it (session, process group, private uid or the run's environment marker).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time


def read_stat(pid: str) -> tuple[str, int, int] | None:
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


def find_sample_processes(leader: int | None, uid: int | None, marker: bytes) -> list[int]:
    """Live processes that belong to a sample: same session/process group as its launcher (while that pid is
    still ours), its private uid, or the run's marker in their environment. Zombies are already dead."""
    if not os.path.isdir("/proc"):
        return []
    me = os.getpid()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        st = read_stat(entry)
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


def kill_sample(leader: int | None, uid: int | None, marker: bytes) -> tuple[int, int]:
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
        victims = find_sample_processes(leader, uid, marker)
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


def has_exited(proc: "subprocess.Popen[bytes]") -> bool:
    """Has our child exited? On Linux checked without reaping it, so its pid (= the session id we sweep
    /proc for) cannot be reused by an unrelated process before the sweep is done. Elsewhere (no waitid, and
    no /proc sweep either) Popen.poll() reaps it, which only leaves killpg() a tiny pid-reuse window."""
    if not hasattr(os, "waitid") or not hasattr(os, "WNOWAIT"):
        return proc.poll() is not None
    try:
        return os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True
