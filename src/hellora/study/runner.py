"""The study's driver: pretrain the bases, then run every (target, base, seed, arm, learning rate), then
summarise.

Parallelism: `workers` processes (spawned, one torch thread each: on a small model two single-threaded
processes on two cores beat one process with two threads, whose threads spin against each other). Bases are
pretrained one per process; then each process takes whole (target, base) cells (a cell's runs depend on each
other only through LoRI-S's LoRI-D adapter and the oracle's LoRA run, both kept inside one cell). With workers=1
everything runs in this process.

Resuming: every finished piece is a file or folder written atomically (see `arm_run.py`, `bases.py`); a rerun
with the same --out skips them. A progress bar in this process counts finished runs from the files themselves,
every 2 s, with an ETA.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from hellora.study.arms import ordered
from hellora.study.config import StudyConfig
from hellora.study.paths import base_folder, run_folder
from hellora.utils.errors import HelloraError
from hellora.utils.io import atomic_write_json, read_json

log = logging.getLogger(__name__)

# fields that may change between a run and its resumption (they only add or remove whole runs, or change the
# analysis of the same runs; a widened lr grid adds runs: run folders are keyed by lr, and the warm-up's lr,
# the grid value just above its middle, stays the same when the grid grows by one value at each end)
_ADDITIVE = ("arms", "targets", "base_seeds", "ft_seeds", "workers", "primary", "iso_target", "lr_grid", "fft_lr_grid")


# log levels inside a study job: hellora's info lines would interleave over workers; a small warm-up profile is
# what the warm-up arms study (1% is ~530 tokens per layer): its warning, right for a user's run, would repeat
# for every run here
_WORKER_LOG_LEVELS = {"hellora": logging.WARNING, "hellora.profiling.profile": logging.ERROR}


def _setup_worker(threads: int) -> None:
    import torch
    from transformers.utils import logging as hf_logging

    torch.set_num_threads(threads)
    for name, level in _WORKER_LOG_LEVELS.items():
        logging.getLogger(name).setLevel(level)
    hf_logging.disable_progress_bar()  # per-load bars would bury the study's own progress bar


def _accelerator():
    from accelerate import Accelerator

    return Accelerator(cpu=True)


def _remove_stale(folder: Path) -> None:
    """Delete the temporary files and folders a killed process left (never a finished piece: those are renamed
    into place only when complete)."""
    for stale in sorted(folder.glob("**/.*.tmp"), reverse=True):
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


def pretrain_worker(cfg: StudyConfig, out: str, base_seed: int, threads: int = 1) -> dict:
    """Pretrain (or load) one base and profile every skill's routing on it, for the heatmaps."""
    from hellora.data import PadCollator, build_tiny_tokenizer
    from hellora.data.skills import generate_skill_examples
    from hellora.profiling import profile_experts
    from hellora.study.bases import pretrained_base
    from hellora.study.skill_moe import skill_features

    _setup_worker(threads)
    root = Path(out)
    folder = base_folder(root, base_seed)
    for stale in folder.parent.glob(f".{folder.name}.*.tmp"):  # this base's own leftovers only
        shutil.rmtree(stale, ignore_errors=True)
    _remove_stale(folder)
    tokenizer = build_tiny_tokenizer()
    model, record = pretrained_base(cfg, root, base_seed, tokenizer, _accelerator())
    folder = base_folder(root, base_seed) / "profiles"
    collate = PadCollator(0)
    for skill in cfg.skills + cfg.targets:
        path = folder / f"{skill}.json"
        if path.is_file():
            continue
        feats = skill_features(tokenizer, generate_skill_examples(skill, 128, seed=3, split="test"))
        profile_experts(model, [collate(feats[i:i + 64]) for i in range(0, len(feats), 64)],
                        source={"skill": skill}, model_id="proxy-moe", progress=False).save(path)
    return record


def cell_worker(cfg: StudyConfig, out: str, target: str, base_seed: int, threads: int = 1) -> None:
    """Every run of one (target, base): per fine-tune seed, the base's scores (and the exclusion rule), then
    every arm (the ones others start from first) at every learning rate of its grid."""
    from hellora.data import build_tiny_tokenizer
    from hellora.study.bases import before_scores, pretrained_base, study_data
    from hellora.study.arm_run import RunContext, run_arm

    _setup_worker(threads)
    root = Path(out)
    tokenizer = build_tiny_tokenizer()
    accelerator = _accelerator()
    model, _ = pretrained_base(cfg, root, base_seed, tokenizer, accelerator)
    for ft_seed in cfg.ft_seeds:
        data = study_data(cfg, target, base_seed, ft_seed, tokenizer)
        before = before_scores(cfg, root, target, base_seed, ft_seed, model, data)
        if before["excluded"]:  # pre-registered: the target was not new to this base
            continue
        ctx = RunContext(cfg, root, target, base_seed, ft_seed, model, data, accelerator)
        for arm in ordered(cfg.arms):
            for lr in cfg.lr_grid_for(arm):
                run_arm(ctx, arm, lr)


def planned_units(cfg: StudyConfig) -> int:
    """Runs the study will have finished (before any base is excluded), over all targets."""
    per_cell = sum(len(cfg.lr_grid_for(a)) for a in cfg.arms)
    return len(cfg.targets) * len(cfg.base_seeds) * len(cfg.ft_seeds) * per_cell


def finished_units(cfg: StudyConfig, out: Path) -> int:
    n = 0
    for target in cfg.targets:
        for arm in cfg.arms:
            for b in cfg.base_seeds:
                for s in cfg.ft_seeds:
                    n += sum((run_folder(out, target, arm, b, s, lr) / "study_run.json").is_file()
                             for lr in cfg.lr_grid_for(arm))
    return n


class _Progress:
    """A tqdm bar over planned runs, refreshed from the output folder by a daemon thread."""

    def __init__(self, cfg: StudyConfig, out: Path, enabled: bool) -> None:
        from tqdm.auto import tqdm

        self.cfg, self.out = cfg, out
        self.bar = tqdm(total=planned_units(cfg), desc="proxy study runs", unit="run", disable=not enabled,
                        initial=finished_units(cfg, out), smoothing=0.05)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(2.0):
            self.refresh()

    def refresh(self) -> None:
        done = finished_units(self.cfg, self.out)
        if done > self.bar.n:
            self.bar.update(done - self.bar.n)

    def __enter__(self) -> _Progress:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.refresh()
        self.bar.close()


def _check_config(cfg: StudyConfig, out: Path) -> None:
    """Refuse an --out folder whose finished runs come from another config (except additive fields)."""
    path = out / "study_config.json"
    current = {k: v for k, v in asdict(cfg).items() if k not in _ADDITIVE}
    if path.is_file():
        saved = read_json(path, "study config")
        if not isinstance(saved, dict):
            raise HelloraError(f"{path}: not a study config (expected a mapping)")
        saved = {k: v for k, v in saved.items() if k not in _ADDITIVE}  # written when fewer fields were additive
        diff = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
        if diff:
            raise HelloraError(f"{out} holds a study run with another config (field {diff[0]!r} differs); "
                               f"choose another --out")
    else:
        atomic_write_json(path, current)


def _loadavg() -> str:
    """The 1/5/15-minute load average (the machine is shared: every published wall time says how loaded)."""
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "-"


@contextmanager
def _restored_process_settings():
    """What `_setup_worker` changes (torch threads, hellora's log levels, transformers' progress bars), put back
    afterwards: with one worker the jobs run in the caller's process, which must not stay changed."""
    import torch
    from transformers.utils import logging as hf_logging

    levels = {name: logging.getLogger(name).level for name in _WORKER_LOG_LEVELS}
    threads, bars = torch.get_num_threads(), hf_logging.is_progress_bar_enabled()
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        if bars:
            hf_logging.enable_progress_bar()


def _map(fn, jobs: list[tuple], workers: int) -> list:
    if workers <= 1 or len(jobs) <= 1:
        with _restored_process_settings():
            return [fn(*job) for job in jobs]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=min(workers, len(jobs)), mp_context=mp.get_context("spawn")) as pool:
        return list(pool.map(fn, *zip(*jobs)))


def run_study(cfg: StudyConfig, out_dir: str | Path, *, progress: bool = True, command: str | None = None) -> dict:
    """Run (or resume) the whole study into `out_dir`; returns the study.json summary."""
    from hellora.study.summary import summarise

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _check_config(cfg, out)
    start = time.perf_counter()
    load_start = _loadavg()
    say = print if progress else (lambda *a, **k: None)
    say(f"pretraining {len(cfg.base_seeds)} base(s) (cached in {out / 'bases'}) ...", flush=True)
    _map(pretrain_worker, [(cfg, str(out), b, cfg.threads) for b in cfg.base_seeds], cfg.workers)
    pretrain_s = time.perf_counter() - start
    say(f"bases ready ({pretrain_s:.0f} s); fine-tuning {len(cfg.targets)} target(s) x {len(cfg.base_seeds)} "
        f"base(s) x {len(cfg.arms)} arms x every learning rate",
        flush=True)
    for target in cfg.targets:
        _remove_stale(out / target)
    with _Progress(cfg, out, progress):
        _map(cell_worker, [(cfg, str(out), t, b, cfg.threads) for t in cfg.targets for b in cfg.base_seeds],
             cfg.workers)
    wall = time.perf_counter() - start
    timing = {"this_invocation_s": round(wall, 1), "total_s": round(wall, 1), "pretrain_phase_s": round(pretrain_s, 1),
              "loadavg_start": load_start, "loadavg_end": _loadavg(), "invocations": 1}
    previous = out / "study.json"
    if previous.is_file():  # a resumed study: keep the total over invocations
        old = read_json(previous, "study summary").get("timing", {})
        timing["invocations"] = old.get("invocations", 1) + 1
        timing["total_s"] = round(old.get("total_s", 0.0) + wall, 1)
    return summarise(cfg, out, timing=timing, command=command)
