"""The training loop: AdamW on the trainable parameters, on accelerate (one process, DDP or FSDP via
`accelerate launch` / `torchrun`), with gradient accumulation to a fixed global batch.

Determinism is by construction, so that a killed run resumes to the same result:
- epoch e visits the examples in `randperm(n, seed + e)` order, cut into micro-batches;
- optimizer step s consumes micro-batches [s*G, (s+1)*G) of its epoch (G = batch_size / micro_batch_size),
  rank r of W taking every W-th one: the same global batch whatever the number of processes;
- the learning rate is a pure function of s; checkpoints restore parameters, AdamW state and each process's RNG;
- a fresh run seeds process r's generators (torch, Python, NumPy) with train.seed + r, so dropout is reproducible.
A non-finite loss, gradient norm or parameter stops the run with a message naming the step and the last good
checkpoint (only finite parameters are ever checkpointed). A resume starts from the newest intact checkpoint
(`usable_checkpoint`), cuts metrics.jsonl back to it (or to nothing, before the first one) so that each step is
logged exactly once, and carries the run's statistics (examples, tokens, step times, wall time) across segments.
A gradient norm of exactly 0, or a loss that does not move, for `STALL_STEPS` steps in a row gives a warning in
the log and in the result. A run that ends in such a stall (for `STALL_STEPS` steps, or the last half of a shorter
run), or whose final loss is far above its first, gets `LoopResult.health` `degenerate` / `diverged` with the reason
(`training_health`): the pipeline records it as the run's status, so a learning rate of 1e6 does not end "finished".
"""

from __future__ import annotations

import json
import logging
import math
import statistics
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import torch
from torch import nn

from hellora.choices import Scheduler
from hellora.config import TrainConfig
from hellora.data.collate import PadCollator
from hellora.loop.checkpoint import (list_checkpoints, load_checkpoint, rng_state, save_checkpoint, seed_rng,
                                      usable_checkpoint)
from hellora.loop.fsdp import average_replicated_gradients, clip_grad_norm_, is_sharded
from hellora.utils.errors import HelloraError
from hellora.utils.io import atomic_write_text
from hellora.utils.progress import progress_bar

if TYPE_CHECKING:
    from accelerate import Accelerator


log = logging.getLogger(__name__)

STALL_STEPS = 20  # steps in a row with a zero gradient norm or an unmoving loss before a warning


class TrainingDiverged(HelloraError):
    """The loss, gradient norm or parameters became NaN/inf at optimizer step `step` (1-based)."""

    def __init__(self, message: str, step: int | None = None) -> None:
        super().__init__(message)
        self.step = step


@dataclass
class LoopResult:
    steps: int
    examples: int
    final_loss: float | None
    wall_time_s: float
    median_step_s: float | None
    samples_per_s: float | None
    tokens_per_s: float | None
    resumed_from: int | None = None
    warnings: list = field(default_factory=list)
    losses: list = field(default_factory=list)
    health: str = "ok"  # "ok", "degenerate" (stalled) or "diverged" (finite, but the loss blew up): training_health
    health_reason: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


def learning_rate(step: int, total: int, peak: float, warmup_ratio: float, kind: str | Scheduler) -> float:
    """Linear warm-up over the first `warmup_ratio` of steps, then cosine, linear or constant decay."""
    warmup = int(math.ceil(warmup_ratio * total))
    if step < warmup:
        return peak * (step + 1) / warmup
    if kind == Scheduler.CONSTANT:
        return peak
    progress = (step - warmup) / max(1, total - warmup)
    if kind == Scheduler.LINEAR:
        return peak * max(0.0, 1.0 - progress)
    if kind == Scheduler.COSINE:
        return peak * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise HelloraError(f"train.lr_scheduler: unknown schedule {kind!r}; choose cosine, linear or constant")


def micro_batch_plan(num_examples: int, micro_batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    order = torch.randperm(num_examples, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
    return [order[i:i + micro_batch_size] for i in range(0, num_examples - micro_batch_size + 1, micro_batch_size)]


def resolve_steps(cfg: TrainConfig, num_examples: int, world: int) -> tuple[int, int, int]:
    """(gradient accumulation per process, optimizer steps per epoch, total optimizer steps)."""
    per_step = cfg.micro_batch_size * world
    assert cfg.batch_size is not None  # a resolved config (RunConfig.resolved) gives the global batch
    if cfg.batch_size % per_step:
        raise HelloraError(f"train.batch_size {cfg.batch_size} must be a multiple of micro_batch_size x processes "
                           f"({cfg.micro_batch_size} x {world})")
    accum = cfg.batch_size // per_step
    steps_per_epoch = (num_examples // cfg.micro_batch_size) // (accum * world)
    if steps_per_epoch == 0:
        raise HelloraError(f"train.batch_size {cfg.batch_size} is larger than the dataset ({num_examples} examples); "
                           f"lower train.batch_size")
    if cfg.max_steps:
        return accum, steps_per_epoch, cfg.max_steps
    assert cfg.epochs is not None  # a resolved config (RunConfig.resolved) gives the epochs
    return accum, steps_per_epoch, max(1, int(math.ceil(cfg.epochs * steps_per_epoch)))


def _truncate_metrics(path: Path, after_step: int, phase: str | None = None) -> None:
    """Keep `phase`'s metric lines up to the resumed step (all of them when `phase` is None) and every other phase's;
    a line half-written by a kill or a full disk is dropped."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(row, dict):
            continue
        if (phase is not None and row.get("phase", phase) != phase) or row.get("step", 0) <= after_step:
            keep.append(line)
    atomic_write_text(path, "".join(line + "\n" for line in keep))


def _resume(ckpt_dir: Path | None, named: dict, optimizer: torch.optim.Optimizer, accelerator: Accelerator,
            metrics_path: Path | None, name: str, seed: int) -> tuple[int, dict]:
    """Restore the newest intact checkpoint (the main process sets damaged ones aside first) and cut the metrics
    back to it; a fresh start seeds this process's generators and drops metric lines of an earlier attempt.
    Returns (first step to run, the run's statistics so far)."""
    rank = accelerator.process_index
    if ckpt_dir is not None:
        if accelerator.is_main_process:
            usable_checkpoint(ckpt_dir)
        accelerator.wait_for_everyone()
    existing = list_checkpoints(ckpt_dir) if ckpt_dir else []
    start, stats = 0, {}
    if existing:
        state = load_checkpoint(existing[-1], named, optimizer, rank=rank)
        start, stats = int(state["step"]), state.get("stats", {})
    else:
        seed_rng(seed + rank)
    if accelerator.is_main_process and metrics_path:
        _truncate_metrics(metrics_path, start, name)
    return start, stats


def _check_parameters(named: dict, step: int, ckpt_dir: Path | None, accelerator: Accelerator) -> None:
    """Raise `TrainingDiverged` on every process when an optimizer step left a parameter non-finite on any (so no
    checkpoint ever holds one). One flag per parameter, one reduction: a sharded model agrees on the outcome."""
    flags = torch.stack([~torch.isfinite(p.detach()).all() for p in named.values()]).float()
    flags = accelerator.reduce(flags.to(accelerator.device), reduction="sum")
    if bool(flags.sum() > 0):
        bad = list(named)[int(torch.nonzero(flags)[0])]
        raise TrainingDiverged(f"training diverged at step {step}: parameter {bad} is not finite after the optimizer "
                               f"step; {_last_good(ckpt_dir)}", step=step)


def _last_good(ckpt_dir: Path | None) -> str:
    saved = list_checkpoints(ckpt_dir) if ckpt_dir else []
    last = saved[-1].name if saved else "none"
    return (f"nothing was saved after the last good checkpoint ({last}); lower train.learning_rate (or "
            f"train.max_grad_norm) and rerun with --restart-from-checkpoint to continue from it, or choose another "
            f"output_dir to start over")


class StallWatch:
    """Counts optimizer steps in a row whose gradient norm is exactly 0, or whose loss equals the previous step's
    to 1e-7 relative; each condition warns once when it reaches `STALL_STEPS` (a frozen model, a masked-out loss,
    a learning rate of 0)."""

    def __init__(self, state: dict | None = None) -> None:
        state = state or {}
        self.zero, self.flat = state.get("zero", 0), state.get("flat", 0)
        self.previous = state.get("previous")
        self.first = state.get("first")  # the run's first loss (for training_health's divergence test)
        self.warnings = list(state.get("warnings", []))

    def update(self, step: int, loss: float, grad_norm: float) -> None:
        if self.first is None:
            self.first = loss
        self.zero = self.zero + 1 if grad_norm == 0.0 else 0
        same = self.previous is not None and abs(loss - self.previous) <= 1e-7 * max(1.0, abs(loss))
        self.flat = self.flat + 1 if same else 0
        self.previous = loss
        for count, what in ((self.zero, "the gradient norm has been 0"), (self.flat, "the loss has not moved")):
            if count == STALL_STEPS:
                message = (f"{what} for {STALL_STEPS} steps in a row (steps {step - STALL_STEPS + 1}-{step}): check "
                           f"that the adapters are trainable, the labels are not all masked and the learning rate "
                           f"is not 0")
                log.warning(message)
                self.warnings.append(message)

    def state(self) -> dict:
        return {"zero": self.zero, "flat": self.flat, "previous": self.previous, "first": self.first,
                "warnings": self.warnings}


DIVERGED_LOSS_RATIO = 2.0  # a final loss this many times the first one (and 1 nat above it) is a blow-up


def training_health(stall: StallWatch, steps: int) -> tuple[str, str | None]:
    """("ok", None), or ("degenerate" | "diverged", why) for a run of `steps` optimizer steps that has ended.

    degenerate: the run ended with its gradient norm at exactly 0, or its loss unmoved, for `STALL_STEPS` steps in a
    row (or the last half of a shorter run, at least 2 steps): the adapters stopped learning (a learning rate of 1e6
    saturates the model until every gradient is 0). diverged: the final loss is `DIVERGED_LOSS_RATIO` times the
    first and at least 1 above it, although finite (non-finite values stop the run earlier, `TrainingDiverged`)."""
    if stall.first is not None and stall.previous is not None and stall.previous > max(
            DIVERGED_LOSS_RATIO * stall.first, stall.first + 1.0):
        return "diverged", (f"the loss rose from {stall.first:.4g} to {stall.previous:.4g}; lower "
                            f"train.learning_rate")
    need = min(STALL_STEPS, max(2, steps // 2))
    if stall.zero >= need:
        return "degenerate", (f"the gradient norm was 0 for the last {stall.zero} of {steps} steps: the adapters "
                              f"stopped learning (is train.learning_rate far too high, or 0?)")
    if stall.flat >= need:
        return "degenerate", (f"the loss did not move for the last {stall.flat} of {steps} steps (check that the "
                              f"adapters are trainable, the labels are not all masked and the learning rate is not 0)")
    return "ok", None


def _gather_rng_states(world: int) -> list[dict]:
    """Every process's `rng_state()`, indexed by rank (a collective: all processes must call it)."""
    if world == 1:
        return [rng_state()]
    from accelerate.utils import gather_object

    return gather_object([rng_state()])


def train_loop(model: nn.Module, features: list[dict], cfg: TrainConfig, *, accelerator: Accelerator,
               run_dir: Path | None = None, pad_token_id: int = 0, name: str = "train", progress: bool = True,
               extra_loss: Callable[[nn.Module], torch.Tensor] | None = None,
               should_stop: Callable[[int], bool] | None = None) -> LoopResult:
    """Train `model`'s trainable parameters on tokenized `features`; checkpoints under run_dir/checkpoints.

    `extra_loss(model) -> tensor`, when given, is added to each micro-batch's loss (e.g. LoRAMoE's balancing loss).
    `should_stop(steps_done) -> bool`, when given, is asked after each optimizer step (the same answer on every
    process) and ends the loop early (stop-when-stable profiling during the warm-up).
    """
    world, rank = accelerator.num_processes, accelerator.process_index
    accum, steps_per_epoch, total = resolve_steps(cfg, len(features), world)
    named = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if not named:
        raise HelloraError("nothing to train: the model has no trainable parameters")
    assert cfg.learning_rate is not None  # a resolved config (RunConfig.resolved) gives the learning rate
    optimizer = torch.optim.AdamW(named.values(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    ckpt_dir = run_dir / "checkpoints" if run_dir else None
    metrics_path = run_dir / "metrics.jsonl" if run_dir else None
    start, stats = _resume(ckpt_dir, named, optimizer, accelerator, metrics_path, name, cfg.seed)
    resumed = start or None
    if cfg.gradient_checkpointing and hasattr(model, "gradient_checkpointing_enable"):
        enable = model.gradient_checkpointing_enable  # a transformers model's method
        assert callable(enable)
        enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if hasattr(model, "enable_input_require_grads"):
            require_grads = model.enable_input_require_grads
            assert callable(require_grads)
            require_grads()
    model.train()
    sharded = is_sharded(model)  # FSDP: the frozen base is sharded, the adapters are replicated (loop/fsdp.py)
    if not sharded and accelerator.distributed_type.name != "FSDP":
        model, optimizer = accelerator.prepare(model, optimizer)
    collate = PadCollator(pad_token_id)
    device = accelerator.device
    step_times, losses = list(stats.get("step_times", [])), []
    examples, tokens, earlier_wall = stats.get("examples", 0), stats.get("tokens", 0), stats.get("wall_time_s", 0.0)
    stall = StallWatch(stats.get("stall"))
    bar = progress_bar(total=total, initial=start, desc=name, disable=not (progress and accelerator.is_main_process),
               unit="step", dynamic_ncols=True)
    loss_value = None
    start_time = time.perf_counter()
    for step in range(start, total):
        t0 = time.perf_counter()
        epoch, position = divmod(step, steps_per_epoch)
        plan = micro_batch_plan(len(features), cfg.micro_batch_size, cfg.seed, epoch)
        group = plan[position * accum * world:(position + 1) * accum * world]
        lr = learning_rate(step, total, cfg.learning_rate, cfg.warmup_ratio, cfg.lr_scheduler)
        for g in optimizer.param_groups:
            g["lr"] = lr
        loss_sum = torch.zeros((), device=device)
        for j, micro in enumerate(group[rank::world]):
            batch = {k: v.to(device) for k, v in collate([features[i] for i in micro]).items()}
            sync = nullcontext() if j == accum - 1 or sharded else accelerator.no_sync(model)
            with sync, accelerator.autocast():
                loss = model(**batch).loss
                if extra_loss is not None:
                    loss = loss + extra_loss(model)
                loss = loss / accum
            accelerator.backward(loss)
            loss_sum += loss.detach().float()
            examples += len(micro) * world
            tokens += int(batch["attention_mask"].sum()) * world
        if sharded:
            average_replicated_gradients(named.values(), world)
            grad_norm = clip_grad_norm_(named.values(), cfg.max_grad_norm)
        else:
            grad_norm = accelerator.clip_grad_norm_(list(named.values()), cfg.max_grad_norm)
        loss_mean = accelerator.reduce(loss_sum, reduction="mean")
        bad = (~torch.isfinite(loss_mean)) | (~torch.isfinite(torch.as_tensor(grad_norm, device=device)))
        if bool(accelerator.reduce(bad.float(), reduction="sum") > 0):
            raise TrainingDiverged(f"training diverged at step {step + 1}: loss {loss_mean.item()}, grad norm "
                                   f"{float(grad_norm)}; {_last_good(ckpt_dir)}", step=step + 1)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _check_parameters(named, step + 1, ckpt_dir, accelerator)
        if device.type == "cuda":
            torch.cuda.synchronize()
        step_times.append(time.perf_counter() - t0)
        loss_value = loss_mean.item()
        losses.append(loss_value)
        stall.update(step + 1, loss_value, float(grad_norm))
        bar.update(1)
        bar.set_postfix(loss=f"{loss_value:.4f}", lr=f"{lr:.2e}")
        done = step + 1
        if accelerator.is_main_process and metrics_path and (done % cfg.logging_steps == 0 or done == total):
            record = {"phase": name, "step": done, "epoch": round(done / steps_per_epoch, 4), "loss": loss_value,
                      "lr": lr, "grad_norm": float(grad_norm), "step_time_s": round(step_times[-1], 4)}
            with open(metrics_path, "a") as f:
                f.write(json.dumps(record) + "\n")
            if cfg.report_to:
                accelerator.log({k: v for k, v in record.items() if k != "phase"}, step=done)
        if ckpt_dir and cfg.save_steps and done % cfg.save_steps == 0 and done < total:
            rng_states = _gather_rng_states(world)
            if accelerator.is_main_process:
                save_checkpoint(ckpt_dir, done, named, optimizer.optimizer if hasattr(optimizer, "optimizer")
                                else optimizer, {"epoch": epoch, "total_steps": total, "stats": {
                                    "examples": examples, "tokens": tokens, "step_times": step_times,
                                    "wall_time_s": earlier_wall + time.perf_counter() - start_time,
                                    "stall": stall.state()}}, cfg.save_total_limit, rng_states=rng_states)
            accelerator.wait_for_everyone()
        if should_stop is not None and should_stop(done):
            total = done
            break
    bar.close()
    wall = earlier_wall + time.perf_counter() - start_time
    timed = step_times[1:] or step_times
    health, why = training_health(stall, total)
    if why:
        log.warning("training ended %s: %s", health, why)
    return LoopResult(steps=total, examples=examples, final_loss=loss_value, wall_time_s=round(wall, 3),
                      median_step_s=round(statistics.median(timed), 4) if timed else None,
                      samples_per_s=round(examples / wall, 3) if wall and examples else None,
                      tokens_per_s=round(tokens / wall, 1) if wall and tokens else None, resumed_from=resumed,
                      warnings=stall.warnings, losses=losses, health=health, health_reason=why)
