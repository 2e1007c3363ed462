"""Atomic folder replacement: a reader sees the whole old folder or the whole new one, never a mix."""

import os

import pytest

from hellora.utils import io as hio


def _write(folder, **files):
    for name, text in files.items():
        (folder / name).write_text(text)


def test_atomic_dir_replaces_the_folder_and_leaves_nothing_beside_it(tmp_path):
    (tmp_path / "out").mkdir()
    _write(tmp_path / "out", a="old", stale="old")
    with hio.atomic_dir(tmp_path / "out") as tmp:
        _write(tmp, a="new", b="new")
        assert not (tmp_path / "out" / "b").exists()  # nothing is visible before the swap
    assert {p.name: p.read_text() for p in (tmp_path / "out").iterdir()} == {"a": "new", "b": "new"}
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_atomic_dir_keeps_the_old_folder_when_writing_fails(tmp_path):
    (tmp_path / "out").mkdir()
    _write(tmp_path / "out", a="old")
    with pytest.raises(RuntimeError):
        with hio.atomic_dir(tmp_path / "out") as tmp:
            _write(tmp, a="new")
            raise RuntimeError("killed")
    assert (tmp_path / "out" / "a").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_replace_dir_puts_the_old_folder_back_when_the_swap_fails(tmp_path, monkeypatch):
    (tmp_path / "out").mkdir()
    _write(tmp_path / "out", a="old")
    real_rename = os.rename

    def rename(src, dst):
        if str(src).endswith(".tmp"):
            raise OSError("rename refused")
        real_rename(src, dst)

    monkeypatch.setattr(hio.os, "rename", rename)
    with pytest.raises(OSError, match="rename refused"):
        with hio.atomic_dir(tmp_path / "out") as tmp:
            _write(tmp, a="new")
    assert (tmp_path / "out" / "a").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
