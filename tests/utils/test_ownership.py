"""--overwrite replaces only what hellora made (issue 22.2), and nothing is left behind (issue 26.6).

Refusals keep every file; a run or a refusal leaves no lock file; a refused input makes no folder; files follow
the umask; temporary files of a killed write are cleaned on resume.
"""

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hellora.cli import main
from hellora.profiling import ExpertProfile
from hellora.train.run_folder import remove_leftovers
from hellora.utils import io as hio
from hellora.utils.errors import HelloraError
from hellora.utils.ownership import MARKER, RUN_FORMAT, OutputKind, check_replaceable, mark_folder, why_not_ours


def _tree(folder: Path) -> dict[str, bytes | None]:
    """Every entry under `folder` (links not followed) with its bytes, to prove nothing changed."""
    found = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root) / name
            found[str(path.relative_to(folder))] = path.read_bytes() if path.is_file() and not path.is_symlink() \
                else None
    return found


def _project(tmp_path) -> Path:
    """A user's folder that looks a little like a run: the issue's reproduction."""
    proj = tmp_path / "proj"
    (proj / "src").mkdir(parents=True)
    (proj / "config.yaml").write_text("mine: true\n")
    (proj / "notes.md").write_text("my notes")
    (proj / "src" / "main.py").write_text("print('mine')")
    return proj


def _fake_run(folder: Path) -> Path:
    """The marker and layout of a run hellora made (without the cost of training one)."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("output_dir: x\n")
    (folder / "run.json").write_text(json.dumps({"format": RUN_FORMAT, "run_id": "a" * 32, "status": "finished"}))
    (folder / "metrics.jsonl").write_text("")
    (folder / "adapter").mkdir()
    return folder


def _fails(capsys, argv, *needles) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len([l for l in err.splitlines() if "error:" in l]) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


# --- which outputs are hellora's ---

def test_why_not_ours_tells_hellora_outputs_from_everything_else(tmp_path):
    assert why_not_ours(_fake_run(tmp_path / "run"), OutputKind.RUN) is None
    assert "no hellora run" in why_not_ours(_project(tmp_path), OutputKind.RUN)
    mixed = _fake_run(tmp_path / "mixed")
    (mixed / "thesis.tex").write_text("years of work")
    assert "thesis.tex" in why_not_ours(mixed, OutputKind.RUN)
    old = _fake_run(tmp_path / "old")  # a run.json without a run id (hand-made, or from before run ids)
    (old / "run.json").write_text(json.dumps({"status": "finished"}))
    assert why_not_ours(old, OutputKind.RUN)

    export = tmp_path / "export"
    export.mkdir()
    (export / "adapter_config.json").write_text("{}")
    mark_folder(export, OutputKind.EXPORT, finished=True)
    assert why_not_ours(export, OutputKind.EXPORT) is None
    assert "no report" in why_not_ours(export, OutputKind.REPORT)  # a marker of another kind
    (export / "later.txt").write_text("added by the user")
    assert "later.txt" in why_not_ours(export, OutputKind.EXPORT)

    profile = tmp_path / "profile.json"
    ExpertProfile(layers=[0], counts=[[1, 2]], mass=[], tokens=[2], num_experts=2, top_k=1).save(profile)
    assert why_not_ours(profile, formats=("hellora.profile/1",)) is None
    assert why_not_ours(profile, formats=("hellora.placement/1",))
    (tmp_path / "data.json").write_text('{"format": "mine"}')
    assert why_not_ours(tmp_path / "data.json")


def test_a_demo_folder_still_being_written_is_recognised_by_its_layout(tmp_path):
    demo = tmp_path / "demo"
    demo.mkdir()
    mark_folder(demo, OutputKind.DEMO)
    (demo / "expert_heatmap.png").write_bytes(b"png")
    (demo / "base-model").mkdir()
    assert why_not_ours(demo, OutputKind.DEMO) is None
    (demo / "holiday.jpg").write_bytes(b"jpg")
    assert "holiday.jpg" in why_not_ours(demo, OutputKind.DEMO)


@pytest.mark.parametrize("overwrite", [False, True])
def test_symbolic_links_are_refused_with_or_without_overwrite(tmp_path, overwrite):
    target = _fake_run(tmp_path / "real")
    (tmp_path / "link").symlink_to(target)
    (tmp_path / "file-link.json").symlink_to(tmp_path / "nowhere.json")  # dangling: still refused
    before = _tree(tmp_path)
    for path in (tmp_path / "link", tmp_path / "file-link.json"):
        with pytest.raises(HelloraError, match="symbolic link"):
            check_replaceable(path, overwrite, kind=OutputKind.RUN)
    assert _tree(tmp_path) == before


# --- every writing command applies the policy ---

def test_train_overwrite_refuses_a_folder_that_holds_a_config_yaml(write_recipe, tmp_path, capsys):
    """The issue's reproduction: `train r.yaml output_dir=proj --overwrite` deleted the project."""
    proj = _project(tmp_path)
    before = _tree(proj)
    _fails(capsys, ["train", str(write_recipe()), f"output_dir={proj}", "--overwrite", "--no-progress"],
           "--overwrite replaces only run folders hellora made", "nothing was changed")
    assert _tree(proj) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no lock, no moved-aside copy


def test_train_overwrite_refuses_a_run_with_foreign_files_and_a_link_to_a_run(write_recipe, tmp_path, capsys):
    mixed = _fake_run(tmp_path / "mixed")
    (mixed / "data.csv").write_text("a,b\n")
    real = _fake_run(tmp_path / "real")
    (tmp_path / "link").symlink_to(real)
    before = _tree(tmp_path)
    _fails(capsys, ["train", str(write_recipe()), f"output_dir={mixed}", "--overwrite", "--no-progress"], "data.csv")
    _fails(capsys, ["train", str(write_recipe()), f"output_dir={tmp_path / 'link'}", "--overwrite", "--no-progress"],
           "symbolic link")
    assert _tree(tmp_path) == {**before, "recipe.yaml": (tmp_path / "recipe.yaml").read_bytes()}


def test_select_and_profile_overwrite_only_their_own_files(tmp_path, capsys):
    profile = tmp_path / "profile.json"
    ExpertProfile(layers=[0, 1], counts=[[5, 1, 0, 2], [0, 3, 3, 1]], mass=[], tokens=[4, 4], num_experts=4,
                  top_k=2).save(profile)
    foreign = tmp_path / "results.json"
    foreign.write_text('{"accuracy": 0.93}')
    _fails(capsys, ["select", "--profile", str(profile), "--out", str(foreign), "--overwrite"],
           "not a file hellora wrote", "nothing was changed")
    assert foreign.read_text() == '{"accuracy": 0.93}'
    _fails(capsys, ["select", "--profile", str(profile), "--out", str(profile), "--overwrite"],
           "hellora.placement/1")  # a profile is not a placement: refused, kept
    assert json.loads(profile.read_text())["format"] == "hellora.profile/1"
    placement = tmp_path / "placement.json"
    assert main(["select", "--profile", str(profile), "--out", str(placement)]) == 0
    assert main(["select", "--profile", str(profile), "--out", str(placement), "--overwrite", "--k", "1"]) == 0
    assert json.loads(placement.read_text())["k"] == 1
    _fails(capsys, ["profile", "recipe.yaml", "--out", str(foreign), "--overwrite"])  # refused before the recipe
    assert foreign.read_text() == '{"accuracy": 0.93}'


@pytest.mark.parametrize("command", ["demo", "report", "export"])
def test_folder_commands_refuse_to_overwrite_a_foreign_folder(tmp_path, capsys, command):
    out = _project(tmp_path)
    before = _tree(out)
    argv = {"demo": ["demo", "--out", str(out), "--overwrite"],
            "report": ["report", str(_fake_run(tmp_path / "run")), "--out", str(out), "--overwrite"],
            "export": ["export", "--adapter", str(tmp_path / "adapter"), "--format", "peft", "--out", str(out),
                       "--overwrite"]}[command]
    _fails(capsys, argv, "--overwrite replaces only outputs hellora made", "nothing was changed")
    assert _tree(out) == before


def test_export_replaces_its_own_export(tmp_path):
    from hellora.adapters import AdapterConfig, attach_adapters
    from hellora.adapters.export import export_peft
    from hellora.models.tiny import tiny_model
    from tests.helpers import first_k_placement

    model = tiny_model("olmoe")
    attach_adapters(model, AdapterConfig(init="random", r=2, alpha=4), first_k_placement(model, (1, 5)))
    export_peft(model, tmp_path / "out")
    marker = json.loads((tmp_path / "out" / MARKER).read_text())
    assert marker["kind"] == "export" and "adapter_model.safetensors" in marker["entries"]
    export_peft(model, tmp_path / "out", overwrite=True)  # its own: replaced
    (tmp_path / "out" / "mine.txt").write_text("mine")
    with pytest.raises(HelloraError, match="mine.txt"):
        export_peft(model, tmp_path / "out", overwrite=True)
    assert (tmp_path / "out" / "mine.txt").read_text() == "mine"


# --- nothing left behind ---

def test_the_lock_file_goes_away_after_the_body_and_after_a_refusal(tmp_path):
    with hio.folder_lock(tmp_path / "run"):
        assert (tmp_path / ".run.lock").read_text() == str(os.getpid())
        (tmp_path / "run").mkdir()
    assert not (tmp_path / ".run.lock").exists()
    with pytest.raises(HelloraError), hio.folder_lock(tmp_path / "a" / "b" / "run"):
        raise HelloraError("refused")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no lock, and the parents made for it are gone


def test_a_filesystem_root_is_refused_before_anything_is_made():
    with pytest.raises(HelloraError, match="filesystem root"), hio.folder_lock("/"):
        pass
    assert not Path("/..lock").exists()


def test_a_waiting_process_that_opened_a_removed_lock_file_takes_a_fresh_one(tmp_path):
    """The holder removes the lock file on release; a process that had opened the old file must not think it
    holds the lock while a third process locks the new file at the same path."""
    import fcntl

    path = tmp_path / ".run.lock"
    stale = os.open(path, os.O_RDWR | os.O_CREAT)  # opened before the holder removed it
    os.unlink(path)
    fd = hio._take_lock(path, "run")
    try:
        assert os.fstat(fd).st_ino == os.stat(path).st_ino
        fcntl.flock(stale, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the old, unlinked file locks freely: not the lock
        assert os.fstat(stale).st_ino != os.stat(path).st_ino
    finally:
        os.close(fd)
        os.close(stale)


def test_a_run_and_a_refused_run_leave_no_lock_and_follow_the_umask(write_recipe, tmp_path, capsys):
    recipe = write_recipe(profile="{mode: none}", adapter="{method: lora, r: 2, alpha: 4}",
                          train="{batch_size: 4, micro_batch_size: 4, max_steps: 1, save_steps: 1}")
    old = os.umask(0o022)
    try:
        assert main(["train", str(recipe), "--no-progress"]) == 0
    finally:
        os.umask(old)
    run = tmp_path / "run"
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []
    for path in [run / "run.json", run / "config.yaml", run / "adapter" / "hellora_adapter.json"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path
    assert stat.S_IMODE((run / "adapter").stat().st_mode) == 0o755
    record = json.loads((run / "run.json").read_text())
    assert record["format"] == RUN_FORMAT and len(record["run_id"]) == 32
    assert why_not_ours(run, OutputKind.RUN) is None  # what train made, train --overwrite may replace
    _fails(capsys, ["train", str(recipe), "--no-progress"], "finished run")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert main(["train", str(recipe), "--overwrite", "--no-progress"]) == 0
    assert json.loads((run / "run.json").read_text())["run_id"] != record["run_id"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_temporary_files_of_a_killed_write_are_removed_on_resume(tmp_path):
    run = _fake_run(tmp_path / "run")
    (run / ".adapter.k2j3.tmp").mkdir()
    (run / ".adapter.k2j3.tmp" / "hellora_adapter.json").write_text("{}")
    (run / ".placement.json.abc.tmp").write_text("{")
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / ".checkpoint-4.x1.tmp").mkdir()
    (run / ".adapter.old-0123").mkdir()
    assert sorted(remove_leftovers(run)) == [".adapter.k2j3.tmp", ".adapter.old-0123", ".placement.json.abc.tmp",
                                             "checkpoints/.checkpoint-4.x1.tmp"]
    assert sorted(p.name for p in run.iterdir()) == ["adapter", "checkpoints", "config.yaml", "metrics.jsonl",
                                                     "run.json"]
    foreign = _project(tmp_path)
    (foreign / ".draft.tmp").write_text("mine")
    assert remove_leftovers(foreign) == [] and (foreign / ".draft.tmp").exists()  # not a run hellora made


def test_atomic_writes_follow_the_umask(tmp_path):
    script = ("import os, stat, sys\nfrom hellora.utils.io import atomic_dir, atomic_write_text\n"
              f"os.umask(0o027)\natomic_write_text({str(tmp_path / 'f.txt')!r}, 'x')\n"
              f"with atomic_dir({str(tmp_path / 'd')!r}) as tmp:\n    (tmp / 'a').write_text('y')\n")
    subprocess.run([sys.executable, "-c", script], check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(hio.__file__).parents[2]), os.environ.get("PYTHONPATH", "")])})
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o640
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o750


def test_eval_overwrite_replaces_only_its_own_reports(tmp_path, capsys):
    data = tmp_path / "skill.jsonl"
    data.write_text(json.dumps({"prompt": "sort 2 1", "answer": "1 2", "skill": "sort"}) + "\n")
    out = tmp_path / "eval"
    out.mkdir()
    (out / "eval_skill.json").write_text('{"my": "own results"}')
    argv = ["eval", "--model", str(tmp_path / "model"), "--task", "skill", "--data", str(data), "--out", str(out)]
    _fails(capsys, argv, "exists", "--overwrite")
    _fails(capsys, [*argv, "--overwrite"], "only evaluation reports hellora wrote", "nothing was changed")
    assert (out / "eval_skill.json").read_text() == '{"my": "own results"}'
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere")
    _fails(capsys, [*argv[:-1], str(tmp_path / "link"), "--overwrite"], "symbolic link")
