"""FSDP2 on CPU with two gloo processes (torchrun): the same adapter as one process, kill -9 of one rank then
resume, stock PEFT on the exported adapter, evaluation after training, the parameter bytes each rank holds, and
sharded gradient clipping.

This file is also the worker torchrun starts (`python tests/train/test_fsdp_gloo.py train|probe ...`).
"""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not on PATH")]


def write_data(path: Path, n: int, seed: int) -> Path:
    """GSM8K-format arithmetic problems (synthetic, so the test needs no downloaded data)."""
    rng = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(n):
            a, b = rng.randint(1, 99), rng.randint(1, 99)
            f.write(json.dumps({"question": f"Tom has {a} apples and buys {b} more. How many apples has he?",
                                "answer": f"{a} + {b} = {a + b}\n#### {a + b}"}) + "\n")
    return path


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from hellora.data import build_tiny_tokenizer
    from hellora.models.tiny import tiny_model

    root = tmp_path_factory.mktemp("fsdp")
    torch.manual_seed(0)
    tiny_model("olmoe", vocab_size=104).save_pretrained(root / "model")
    build_tiny_tokenizer().save_pretrained(root / "model")
    return {"root": root, "model": root / "model", "train": write_data(root / "train.jsonl", 48, 0),
            "test": write_data(root / "test.jsonl", 4, 1)}


def recipe(setup, name: str, *, adapter="{method: hellora, r: 4, alpha: 8}", steps=4, save_steps=2,
           fsdp=True, evaluate=False, checkpointing=False) -> Path:
    root = setup["root"]
    text = (f"model: {{name: {setup['model']}, dtype: float32}}\n"
            f"data: {{task: gsm8k, train: {setup['train']}, limit: 48, max_length: 96, max_prompt_length: 64}}\n"
            f"profile: {{mode: warmup, fraction: 0.34}}\n"
            f"adapter: {adapter}\n"
            f"train: {{batch_size: 8, micro_batch_size: 2, max_steps: {steps}, save_steps: {save_steps}, "
            f"save_total_limit: 10, logging_steps: 1, learning_rate: 0.002, fsdp: {str(fsdp).lower()}, "
            f"gradient_checkpointing: {str(checkpointing).lower()}}}\n"
            f"output_dir: {root / name}\n")
    if evaluate:
        text += (f"eval: {{enabled: true, tasks: [gsm8k], data: {{gsm8k: {setup['test']}}}, limit: 4, "
                 f"max_new_tokens: 6, batch_size: 2}}\n")
    path = root / f"{name}.yaml"
    path.write_text(text)
    return path


def torchrun(*args, port: int, log: Path | None = None):
    """Run this file as a torchrun worker on two processes; with `log`, start it and return (output to `log`)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT),
                                                        os.environ.get("PYTHONPATH", "")])}
    command = ["torchrun", "--nproc-per-node", "2", "--master-port", str(port), __file__, *map(str, args)]
    if log is not None:
        with open(log, "w") as out:
            return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    done = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    return done


def adapter_of(run: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(run / "adapter" / "hellora_adapter.safetensors"))


def assert_same_adapter(a: dict, b: dict, rel: float) -> None:
    assert a.keys() == b.keys() and a
    for key in a:
        diff = (a[key].double() - b[key].double()).norm() / a[key].double().norm().clamp_min(1e-30)
        assert diff <= rel, (key, float(diff))
    assert any(a[k].abs().sum() > 0 for k in a if k.endswith("lora_B"))  # trained, not the zero init


def train_here(path: Path) -> None:
    from hellora.cli import main

    assert main(["train", str(path), "--no-progress"]) == 0


HELLORA = "{method: hellora, r: 4, alpha: 8}"  # warm-up profile, selection, hot-expert adapters


@pytest.fixture(scope="module")
def two(setup):
    """The hellora recipe trained by two FSDP processes, evaluated after training: 8 steps, a checkpoint every 2."""
    torchrun("train", recipe(setup, "two", steps=8, evaluate=True), port=29641)
    return setup["root"] / "two"


def test_two_fsdp_processes_equal_one_and_evaluate_alike(setup, two):
    root = setup["root"]
    train_here(recipe(setup, "one", steps=8, fsdp=False, evaluate=True))
    status = json.loads((two / "run.json").read_text())
    assert status["processes"] == 2 and status["status"] == "finished"
    # the warm-up ran on the sharded base; its counts, summed over both processes, are the one-process counts
    profiles = [json.loads((run / "profile.json").read_text()) for run in (root / "one", two)]
    assert profiles[0]["counts"] == profiles[1]["counts"] and profiles[1]["meta"]["processes"] == 2
    assert (root / "one" / "placement.json").read_text() == (two / "placement.json").read_text()
    assert_same_adapter(adapter_of(root / "one"), adapter_of(two), 1e-5)
    # evaluation after training (rank 0, base loaded whole): the same generations and scores as one process
    assert status["steps"]["eval"] == json.loads((root / "one" / "run.json").read_text())["steps"]["eval"]
    generations = root / "one" / "eval" / "gsm8k_generations.jsonl"
    assert generations.read_text() == (two / "eval" / generations.name).read_text()
    assert len(generations.read_text().splitlines()) == 4


def test_stock_peft_loads_the_export_of_the_fsdp_adapter(setup, two):
    """`hellora export` on the FSDP run's adapter, unchanged; stock PEFT gives hellora's logits."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from hellora.adapters.io import load_adapter
    from hellora.cli import main

    out = setup["root"] / "peft"
    assert main(["export", "--adapter", str(two / "adapter"), "--format", "peft", "--out", str(out),
                 "--model", str(setup["model"])]) == 0
    ids = torch.randint(3, 100, (2, 12), generator=torch.Generator().manual_seed(3))
    ours = load_adapter(AutoModelForCausalLM.from_pretrained(setup["model"]), two / "adapter")
    theirs = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(setup["model"]), out)
    base = AutoModelForCausalLM.from_pretrained(setup["model"])
    with torch.no_grad():
        expected, got, plain = ours(ids).logits, theirs(ids).logits, base(ids).logits
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    assert (expected - plain).abs().max() > 1e-4  # the adapter changes the logits


def _rank_pid(parent: int, rank: int) -> int | None:
    """The pid of torchrun worker `rank` (a child of `parent`), from /proc."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            env = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and f"RANK={rank}".encode() in env:
            return int(entry.name)
    return None


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds the worker pids in /proc")
def test_kill_minus_9_of_one_rank_then_rerun_resumes_to_the_same_adapter(setup, two):
    root = setup["root"]
    killed = recipe(setup, "killed", steps=8, evaluate=True)
    log = root / "killed.log"
    proc = torchrun("train", killed, port=29643, log=log)
    target = root / "killed" / "checkpoints" / "step-000002"
    deadline = time.time() + 600
    while not target.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.005)
    pid = _rank_pid(proc.pid, 1)
    assert pid is not None and target.exists(), log.read_text()[-3000:]
    os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=300)
    assert proc.returncode != 0
    assert not (root / "killed" / "adapter").exists(), "the run finished before one rank was killed"
    torchrun("train", killed, port=29644)  # the same command again
    status = json.loads((root / "killed" / "run.json").read_text())
    assert status["status"] == "finished" and status["steps"]["train"]["resumed_from"] >= 2
    assert_same_adapter(adapter_of(two), adapter_of(root / "killed"), 1e-6)
    steps = [json.loads(line)["step"] for line in (root / "killed" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))


def test_lori_and_loramoe_under_fsdp_equal_one_process(setup):
    """LoRI-D (with gradient checkpointing), then LoRI-S from it, and LoRAMoE with its balancing loss."""
    root = setup["root"]
    names = {"lori_d": "{method: hellora, variant: lori_d, r: 4, alpha: 8}",
             "loramoe": "{method: loramoe, r: 2, alpha: 4, loramoe_experts: 2, loramoe_balance: 0.01}"}
    for name, adapter in names.items():
        train_here(recipe(setup, f"{name}-1", adapter=adapter, checkpointing=name == "lori_d"))
    lori_s = "{{method: hellora, variant: lori_s, r: 4, alpha: 8, lori_from: {}}}"
    train_here(recipe(setup, "lori_s-1", adapter=lori_s.format(root / "lori_d-1" / "adapter")))
    for port, (name, adapter) in enumerate(names.items(), start=29645):
        torchrun("train", recipe(setup, f"{name}-2", adapter=adapter, checkpointing=name == "lori_d"), port=port)
    torchrun("train", recipe(setup, "lori_s-2", adapter=lori_s.format(root / "lori_d-1" / "adapter")), port=29647)
    for name in ("lori_d", "loramoe", "lori_s"):
        assert_same_adapter(adapter_of(root / f"{name}-1"), adapter_of(root / f"{name}-2"), 1e-5)


def test_parameter_bytes_halve_and_sharded_clipping_uses_the_global_norm(setup):
    done = torchrun("probe", setup["model"], setup["root"] / "probe", port=29648)
    rows = [json.loads((setup["root"] / "probe" / f"rank{r}.json").read_text()) for r in (0, 1)]
    for row in rows:
        assert row["full"] == rows[0]["full"] > 0
        # a dim-0 shard per rank: at most half plus one row of each weight (padding goes to the last rank)
        assert 0.45 * row["full"] <= row["local"] <= 0.55 * row["full"], row
        assert row["local_with_adapters"] - row["local"] == row["adapter_bytes"] > 0  # adapters replicated
    assert sum(r["local"] for r in rows) == rows[0]["full"], done.stderr[-2000:]
    for row in rows:
        torch.testing.assert_close(torch.tensor(row["clip_norm"]), torch.tensor(row["reference_norm"]))
        torch.testing.assert_close(torch.tensor(row["clipped"]), torch.tensor(row["reference_clipped"]))
        assert row["averaged"] == row["expected_average"]


# ---------------------------------------------------------------------------------------------------------------
# torchrun worker


def _probe(model_dir: str, out: str) -> None:
    import torch.distributed as dist
    from accelerate import Accelerator
    from torch import nn
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from transformers import AutoModelForCausalLM

    from hellora.adapters import AdapterConfig, attach_adapters
    from hellora.loop.fsdp import (average_replicated_gradients, clip_grad_norm_, parameter_bytes,
                                    shard_frozen_base)

    accelerator = Accelerator(cpu=True)
    rank = accelerator.process_index
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    shard_frozen_base(model, accelerator)
    local, full = parameter_bytes(model)
    attach_adapters(model, AdapterConfig(method="lora", r=4, alpha=8), None)
    adapter_bytes = sum(p.numel() * p.element_size() for p in model.parameters() if p.requires_grad)
    with_adapters, _ = parameter_bytes(model)
    row = {"local": local, "full": full, "adapter_bytes": adapter_bytes, "local_with_adapters": with_adapters}

    # DTensor-aware clipping: a sharded trainable Linear; reference = the same gradients unsharded
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 5), nn.Linear(5, 3))
    reference = [p.detach().clone() for p in net.parameters()]
    fully_shard(net, mesh=init_device_mesh("cpu", (2,)))
    x = torch.randn(4, 6, generator=torch.Generator().manual_seed(rank))
    net(x).pow(2).sum().backward()
    norm = clip_grad_norm_(net.parameters(), 0.5)
    clipped = [p.grad.full_tensor() for p in net.parameters()]
    # the same on one process: the mean gradient over both ranks' inputs (FSDP2 averages), then torch's clipping
    ref = nn.Sequential(nn.Linear(6, 5), nn.Linear(5, 3))
    with torch.no_grad():
        for p, value in zip(ref.parameters(), reference):
            p.copy_(value)
    for r in (0, 1):
        x = torch.randn(4, 6, generator=torch.Generator().manual_seed(r))
        (ref(x).pow(2).sum() / 2).backward()
    ref_norm = torch.nn.utils.clip_grad_norm_(ref.parameters(), 0.5)
    row.update(clip_norm=float(norm), reference_norm=float(ref_norm),
               clipped=torch.cat([g.reshape(-1) for g in clipped]).tolist(),
               reference_clipped=torch.cat([p.grad.reshape(-1) for p in ref.parameters()]).tolist())

    # replicated gradients: averaged, a gradient missing on one process counting as zeros, none anywhere: none
    params = [nn.Parameter(torch.zeros(3)), nn.Parameter(torch.zeros(2)), nn.Parameter(torch.zeros(1))]
    params[0].grad = torch.full((3,), float(rank + 1))
    params[1].grad = torch.full((2,), 4.0) if rank == 0 else None
    average_replicated_gradients(params, 2)
    row.update(averaged=[None if p.grad is None else p.grad.tolist() for p in params],
               expected_average=[[1.5] * 3, [2.0] * 2, None])
    Path(out).mkdir(parents=True, exist_ok=True)
    (Path(out) / f"rank{rank}.json").write_text(json.dumps(row))
    dist.barrier()


if __name__ == "__main__":
    mode, *rest = sys.argv[1:]
    if mode == "train":
        from hellora.cli import main

        sys.exit(main(["train", *rest, "--no-progress"]))
    else:
        _probe(*rest)
