"""Checkpoints you can trust: a manifest of checksums, damage found before a resume, damaged folders set aside."""

import json
import logging

import torch
from safetensors.torch import save_file

from hellora.loop.checkpoint import (MANIFEST, checkpoint_problem, list_checkpoints, load_checkpoint, save_checkpoint,
                                      usable_checkpoint)


def _trainable(value=None):
    weight = torch.nn.Parameter(torch.randn(3) if value is None else value)
    optimizer = torch.optim.AdamW([weight])
    weight.grad = torch.ones(3)
    optimizer.step()
    return {"w": weight}, optimizer


def _save(folder, step, value=None):
    params, optimizer = _trainable(value)
    return save_checkpoint(folder, step, params, optimizer, {}, keep=10)


def test_the_manifest_names_every_file_with_its_checksum(tmp_path):
    path = _save(tmp_path, 2)
    files = json.loads((path / MANIFEST).read_text())["files"]
    assert sorted(files) == sorted(p.name for p in path.iterdir() if p.name != MANIFEST)
    assert all(len(r["sha256"]) == 64 and r["bytes"] > 0 for r in files.values())
    assert checkpoint_problem(path) is None


def test_each_kind_of_damage_is_named(tmp_path):
    def damaged(step, harm):
        path = _save(tmp_path, step)
        harm(path)
        return checkpoint_problem(path)

    data = "trainable.safetensors"
    assert "bytes" in damaged(1, lambda p: (p / data).write_bytes((p / data).read_bytes()[:40]))  # truncated
    flip = lambda p: (p / data).write_bytes((p / data).read_bytes()[:-1] + b"\x01")  # noqa: E731 - same size
    assert "checksum" in damaged(2, flip)
    assert "optimizer.safetensors is missing" == damaged(3, lambda p: (p / "optimizer.safetensors").unlink())
    assert "rng_rank0.json is missing" == damaged(4, lambda p: (p / "rng_rank0.json").unlink())

    def legacy_bad_state(p):  # no manifest to catch it: the JSON itself must
        (p / MANIFEST).unlink()
        (p / "state.json").write_text("{not json")

    assert "unreadable" in damaged(5, legacy_bad_state)

    def legacy_truncated(p):
        (p / MANIFEST).unlink()
        (p / data).write_bytes((p / data).read_bytes()[:40])

    assert "unreadable" in damaged(6, legacy_truncated)


def test_a_checkpoint_holding_nan_is_damaged_even_with_matching_checksums(tmp_path):
    path = _save(tmp_path, 3)
    params, optimizer = _trainable(torch.tensor([1.0, float("nan"), 2.0]))
    save_file({"w": params["w"].detach()}, str(path / "trainable.safetensors"))
    manifest = json.loads((path / MANIFEST).read_text())
    from hellora.utils.io import sha256_file

    manifest["files"]["trainable.safetensors"] = {"sha256": sha256_file(path / "trainable.safetensors"),
                                                  "bytes": (path / "trainable.safetensors").stat().st_size}
    (path / MANIFEST).write_text(json.dumps(manifest))
    assert checkpoint_problem(path) == "trainable.safetensors holds NaN or inf in w"


def test_damaged_newest_checkpoints_are_set_aside_and_the_newest_intact_one_used(tmp_path, caplog):
    for step in (2, 4, 6):
        _save(tmp_path, step)
    (tmp_path / "step-000006" / "trainable.safetensors").write_bytes(b"\0" * 8)
    (tmp_path / "step-000004" / "state.json").unlink()
    with caplog.at_level(logging.WARNING, logger="hellora.loop.checkpoint"):
        found = usable_checkpoint(tmp_path)
    assert found == tmp_path / "step-000002"
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-000002"]
    aside = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("damaged-"))
    assert [a.split("-20")[0] for a in aside] == ["damaged-step-000004", "damaged-step-000006"]
    assert (tmp_path / aside[1] / "trainable.safetensors").read_bytes() == b"\0" * 8  # kept for inspection
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "step-000006" in warnings[0] and "step-000004" in warnings[0]
    assert "resuming from step-000002" in warnings[0]


def test_nothing_intact_means_a_fresh_start(tmp_path):
    _save(tmp_path, 2)
    (tmp_path / "step-000002" / "optimizer.safetensors").write_bytes(b"")
    assert usable_checkpoint(tmp_path) is None and list_checkpoints(tmp_path) == []


def test_a_checkpoint_without_checksums_still_resumes_with_a_warning(tmp_path, caplog):
    params, optimizer = _trainable()
    path = save_checkpoint(tmp_path, 2, params, optimizer, {}, keep=1)
    (path / MANIFEST).unlink()
    with caplog.at_level(logging.WARNING, logger="hellora.loop.checkpoint"):
        assert usable_checkpoint(tmp_path) == path
    assert "no checksums" in caplog.text
    fresh, fresh_opt = _trainable()
    load_checkpoint(path, fresh, fresh_opt)
    assert torch.equal(fresh["w"], params["w"])


def test_disk_full_while_saving_tensors_is_an_oserror_and_leaves_no_checkpoint(tmp_path, monkeypatch):
    import errno

    import pytest
    from safetensors import SafetensorError

    import hellora.loop.checkpoint as checkpoint

    def full(tensors, path):
        raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: '
                              '"No space left on device" })')

    monkeypatch.setattr(checkpoint, "save_file", full)
    params, optimizer = _trainable()
    with pytest.raises(OSError) as info:
        save_checkpoint(tmp_path, 2, params, optimizer, {}, keep=1)
    assert info.value.errno == errno.ENOSPC and list(tmp_path.iterdir()) == []


def test_a_save_cut_short_leaves_a_temp_folder_that_the_next_resume_removes(tmp_path):
    _save(tmp_path, 2)
    cut = tmp_path / ".step-000004.abc123.tmp"
    cut.mkdir()
    (cut / "trainable.safetensors").write_bytes(b"partial")
    assert usable_checkpoint(tmp_path) == tmp_path / "step-000002" and not cut.exists()
