"""What a sample sees of the machine: its private temp directory, its scrubbed environment, and which
folders the launcher hides (home folders) or keeps visible (the interpreter's own) in its mount namespace."""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile

PROGRAM_NAME = "main.py"


def make_workdir(tmp_root: str) -> str:
    """A fresh, empty directory (mode 0700) for one sample: its cwd, HOME and TMPDIR."""
    return tempfile.mkdtemp(prefix="hellora-sbx-", dir=tmp_root)


def write_program(workdir: str, source: str) -> str:
    """Write the sample's program into its directory, readable by the sample's uid; return its path."""
    path = os.path.join(workdir, PROGRAM_NAME)
    with open(path, "w", encoding="utf-8") as f:
        f.write(source)
    os.chmod(path, 0o644)
    return path


def sample_env(workdir: str, marker: str) -> dict[str, str]:
    """The sample's whole environment: nothing of the harness's (API tokens, PYTHON* variables ...) leaks in.
    `marker` lets the kill sweep find the sample's processes by their environment."""
    return {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": workdir, "TMPDIR": workdir,
            "HELLORA_SANDBOX": marker}


def remove_workdir(path: str) -> None:
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


def interpreter_paths(python: str) -> list[str]:
    """Folders the sample's interpreter needs; they stay visible even if they sit in a hidden home."""
    paths = {os.path.dirname(os.path.dirname(python))}  # <prefix>/bin/python -> <prefix> (has lib/ too)
    if os.path.realpath(sys.executable) == python:
        paths |= {os.path.realpath(sys.base_prefix), os.path.realpath(sys.base_exec_prefix)}
    outer: list[str] = []
    for p in sorted(paths, key=len):
        if not any(p == o or p.startswith(o.rstrip("/") + "/") for o in outer):
            outer.append(p)
    return outer


def default_hide_paths(workdir_root: str) -> list[str]:
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
