"""The training loop: AdamW on the trainable parameters, on accelerate (one process, DDP or FSDP via
`accelerate launch` / `torchrun`), with gradient accumulation to a fixed global batch.

Determinism is by construction, so that a killed run resumes to the same result:
- epoch e visits the examples in `randperm(n, seed + e)` order, cut into micro-batches;
- optimizer step s consumes micro-batches [s*G, (s+1)*G) of its epoch (G = batch_size / micro_batch_size),
  rank r of W taking every W-th one: the same global batch whatever the number of processes;
- the learning rate is a pure function of s; checkpoints restore parameters, AdamW state and each process's RNG;
- a fresh run seeds process r's generators (torch, Python, NumPy) with train.seed + r, so dropout is reproducible.
A non-finite loss or gradient norm stops the run with a message naming the step; the last good checkpoint stays.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from hellora.config import TrainConfig
from hellora.data.collate import PadCollator
from hellora.train.checkpoint import list_checkpoints, load_checkpoint, rng_state, save_checkpoint, seed_rng
from hellora.train.fsdp import average_replicated_gradients, clip_grad_norm_, is_sharded
from hellora.utils.errors import HelloraError
from hellora.utils.io import atomic_write_text


class TrainingDiverged(HelloraError):
    """The loss or gradient norm became NaN/inf."""


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
    losses: list = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def learning_rate(step: int, total: int, peak: float, warmup_ratio: float, kind: str) -> float:
    """Linear warm-up over the first `warmup_ratio` of steps, then cosine, linear or constant decay."""
    warmup = int(math.ceil(warmup_ratio * total))
    if step < warmup:
        return peak * (step + 1) / warmup
    if kind == "constant":
        return peak
    progress = (step - warmup) / max(1, total - warmup)
    if kind == "linear":
        return peak * max(0.0, 1.0 - progress)
    if kind == "cosine":
        return peak * 0.5 * (1.0 + math.cos(math.pi * progress))
    raise HelloraError(f"train.lr_scheduler: unknown schedule {kind!r}; choose cosine, linear or constant")


def micro_batch_plan(num_examples: int, micro_batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    order = torch.randperm(num_examples, generator=torch.Generator().manual_seed(seed + epoch)).tolist()
    return [order[i:i + micro_batch_size] for i in range(0, num_examples - micro_batch_size + 1, micro_batch_size)]


def resolve_steps(cfg: TrainConfig, num_examples: int, world: int) -> tuple[int, int, int]:
    """(gradient accumulation per process, optimizer steps per epoch, total optimizer steps)."""
    per_step = cfg.micro_batch_size * world
    if cfg.batch_size % per_step:
        raise HelloraError(f"train.batch_size {cfg.batch_size} must be a multiple of micro_batch_size x processes "
                           f"({cfg.micro_batch_size} x {world})")
    accum = cfg.batch_size // per_step
    steps_per_epoch = (num_examples // cfg.micro_batch_size) // (accum * world)
    if steps_per_epoch == 0:
        raise HelloraError(f"train.batch_size {cfg.batch_size} is larger than the dataset ({num_examples} examples); "
                           f"lower train.batch_size")
    total = cfg.max_steps or max(1, int(math.ceil(cfg.epochs * steps_per_epoch)))
    return accum, steps_per_epoch, total


def _truncate_metrics(path: Path, after_step: int) -> None:
    """Keep the metric lines up to the resumed step; a line half-written by a kill is dropped."""
    if not path.is_file():
        return
    keep = []
    for line in path.read_text().splitlines():
        try:
            if json.loads(line).get("step", 0) <= after_step:
                keep.append(line)
        except json.JSONDecodeError:
            continue
    atomic_write_text(path, "".join(line + "\n" for line in keep))


def _gather_rng_states(world: int) -> list[dict]:
    """Every process's `rng_state()`, indexed by rank (a collective: all processes must call it)."""
    if world == 1:
        return [rng_state()]
    from accelerate.utils import gather_object

    return gather_object([rng_state()])


def train_loop(model, features: list[dict], cfg: TrainConfig, *, accelerator, run_dir: Path | None = None,
               pad_token_id: int = 0, name: str = "train", progress: bool = True, extra_loss=None) -> LoopResult:
    """Train `model`'s trainable parameters on tokenized `features`; checkpoints under run_dir/checkpoints.

    `extra_loss(model) -> tensor`, when given, is added to each micro-batch's loss (e.g. LoRAMoE's balancing loss).
    """
    world, rank = accelerator.num_processes, accelerator.process_index
    accum, steps_per_epoch, total = resolve_steps(cfg, len(features), world)
    named = {n: p for n, p in model.named_parameters() if p.requires_grad}
    if not named:
        raise HelloraError("nothing to train: the model has no trainable parameters")
    optimizer = torch.optim.AdamW(named.values(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    ckpt_dir = run_dir / "checkpoints" if run_dir else None
    metrics_path = run_dir / "metrics.jsonl" if run_dir else None
    start, resumed = 0, None
    existing = list_checkpoints(ckpt_dir) if ckpt_dir else []
    if existing:
        state = load_checkpoint(existing[-1], named, optimizer, rank=rank)
        start = resumed = int(state["step"])
        if accelerator.is_main_process and metrics_path:
            _truncate_metrics(metrics_path, start)
    else:
        seed_rng(cfg.seed + rank)
    if cfg.gradient_checkpointing and hasattr(model, "gradient_checkpointing_enable"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        if hasattr(model, "enable_input_require_grads"):
            model.enable_input_require_grads()
    model.train()
    sharded = is_sharded(model)  # FSDP: the frozen base is sharded, the adapters are replicated (train/fsdp.py)
    if not sharded and accelerator.distributed_type.name != "FSDP":
        model, optimizer = accelerator.prepare(model, optimizer)
    collate = PadCollator(pad_token_id)
    device = accelerator.device
    step_times, losses, examples, tokens = [], [], 0, 0
    bar = tqdm(total=total, initial=start, desc=name, disable=not (progress and accelerator.is_main_process),
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
            last = list_checkpoints(ckpt_dir)[-1].name if ckpt_dir and list_checkpoints(ckpt_dir) else "none"
            raise TrainingDiverged(f"training diverged at step {step + 1}: loss {loss_mean.item()}, grad norm "
                                   f"{float(grad_norm)}; nothing was saved after the last good checkpoint ({last}); "
                                   f"lower train.learning_rate or check the data")
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device.type == "cuda":
            torch.cuda.synchronize()
        step_times.append(time.perf_counter() - t0)
        loss_value = loss_mean.item()
        losses.append(loss_value)
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
                                else optimizer, {"epoch": epoch, "total_steps": total}, cfg.save_total_limit,
                                rng_states=rng_states)
            accelerator.wait_for_everyone()
    bar.close()
    wall = time.perf_counter() - start_time
    timed = step_times[1:] or step_times
    return LoopResult(steps=total, examples=examples, final_loss=loss_value, wall_time_s=round(wall, 3),
                      median_step_s=round(statistics.median(timed), 4) if timed else None,
                      samples_per_s=round(examples / wall, 3) if wall and examples else None,
                      tokens_per_s=round(tokens / wall, 1) if wall and tokens else None, resumed_from=resumed,
                      losses=losses)
