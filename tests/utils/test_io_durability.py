"""Durable folder writes (every file fsynced before the rename) and the run-folder lock: one lock per real folder
however it is reached, and a stale pid left by a dead holder reclaimed with a message."""

import logging
import os
import subprocess
import sys

import pytest

from hellora.utils import io as hio
from hellora.utils.errors import HelloraError


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="names synced fds through /proc (Linux)")
def test_atomic_dir_fsyncs_every_file_and_folder_before_the_rename(tmp_path, monkeypatch):
    synced, renamed = [], []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd):
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    def rename(src, dst):
        renamed.append((str(src), len(synced)))
        real_rename(src, dst)

    monkeypatch.setattr(hio.os, "fsync", fsync)
    monkeypatch.setattr(hio.os, "rename", rename)
    with hio.atomic_dir(tmp_path / "out") as tmp:
        (tmp / "a.bin").write_bytes(b"a")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "b.bin").write_bytes(b"b")
    src, synced_before = renamed[0]
    before = synced[:synced_before]
    for name in ("a.bin", "sub/b.bin", "sub", ""):
        assert os.path.join(src, name).rstrip("/") in before, name
    assert (tmp_path / "out" / "sub" / "b.bin").read_bytes() == b"b"


def test_sha256_file_matches_hashlib(tmp_path):
    import hashlib

    (tmp_path / "f").write_bytes(b"x" * 3_000_000)
    assert hio.sha256_file(tmp_path / "f", chunk=4096) == hashlib.sha256(b"x" * 3_000_000).hexdigest()


def _holder(path):
    return subprocess.Popen([sys.executable, "-c", "import time; from hellora.utils.io import folder_lock\n"
                             f"with folder_lock({str(path)!r}):\n print('held', flush=True); time.sleep(60)"],
                            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(
                                sys.path)})


@pytest.mark.parametrize("held_through", ["real", "link"])
def test_a_folder_reached_through_a_symlink_from_another_process_is_refused(tmp_path, held_through):
    real = tmp_path / "runs" / "real"
    real.mkdir(parents=True)
    link = tmp_path / "elsewhere"
    link.symlink_to(real)
    holder = _holder(real if held_through == "real" else link)
    try:
        assert holder.stdout.readline().strip() == "held"
        for path in (link, real, tmp_path / "runs" / ".." / "runs" / "real"):
            with pytest.raises(HelloraError, match=f"in use by another hellora process \\(pid {holder.pid}\\)"):
                with hio.folder_lock(path):
                    pass
    finally:
        holder.kill()
        holder.wait()


def test_a_stale_lock_naming_a_dead_pid_is_reclaimed_with_a_message(tmp_path, caplog):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run = tmp_path / "run"
    (tmp_path / ".run.lock").write_text(str(dead.pid))
    with caplog.at_level(logging.WARNING, logger="hellora.utils.io"):
        with hio.folder_lock(run):
            assert (tmp_path / ".run.lock").read_text() == str(os.getpid())
    assert f"left by pid {dead.pid}, which is no longer running" in caplog.text
    assert not (tmp_path / ".run.lock").exists()  # a clean exit leaves nothing behind, nothing to reclaim
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hellora.utils.io"):
        with hio.folder_lock(run):
            pass
    assert "reclaimed" not in caplog.text
