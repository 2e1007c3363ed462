"""Stop-when-stable profiling against the paper's fixed 10%, on a tiny MoE whose experts have specialised.

    python -m hellora.bench.stable_profiling --out stable.json [--pretrain-steps 200] [--examples 2000]

A demo-sized OLMoE (3 layers, 8 experts, top-2) is pretrained briefly on the demo's skill mixture so its routing
specialises, then the target skill's training set is profiled with forward passes three ways:
    fixed     the seeded 10% sample, every batch (the paper's setting)
    stable    the same sample with profile.until_stable (window 4 batches, Jaccard 1.0): stops when settled
    full      100% of the data (the reference hot sets)
Reported: the hot sets' Jaccard against the full profile (and stable against fixed), the fraction of the data
each used, and wall times. Deterministic for a seed and thread count, apart from the times.
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Sequence

import torch

from hellora.config import load_run_config
from hellora.data import build_tiny_tokenizer
from hellora.data.skills import generate_skill_examples
from hellora.profiling.profile import compare_profiles
from hellora.profiling.stage import forward_profile, profile_sample
from hellora.study.pretrain_finetune import SkillMoESpec, mixture_features, pretrain_skill_moe
from hellora.study.skill_moe import skill_features
from hellora.utils.io import atomic_write_json
from hellora.utils.meta import run_metadata

SKILLS = ("copy", "upper", "reverse", "sort", "max")


class _OneProcess:
    process_index, num_processes, is_main_process = 0, 1, True
    device = torch.device("cpu")


def run(pretrain_steps: int = 200, examples: int = 2000, target: str = "sort", seed: int = 0,
        window: int = 4, jaccard: float = 1.0, batch_size: int = 8) -> dict:
    from accelerate import Accelerator

    tokenizer = build_tiny_tokenizer()
    pretrain = mixture_features(tokenizer, [(s, 800) for s in SKILLS], seed=seed)
    spec = SkillMoESpec(hidden_size=128, layers=3, experts=8, top_k=2, pretrain_steps=pretrain_steps,
                        pretrain_lr=3e-3, pretrain_batch=64)
    tick = time.perf_counter()
    model, _ = pretrain_skill_moe(spec, len(tokenizer), pretrain, Accelerator(cpu=True), init_seed=seed, train_seed=0)
    pretrain_s = time.perf_counter() - tick
    features = skill_features(tokenizer, generate_skill_examples(target, examples, seed=seed + 3))
    source = {"skill": target, "examples": len(features)}
    out: dict[str, Any] = {"config": {"pretrain_steps": pretrain_steps, "examples": examples, "target": target, "seed": seed,
                      "window": window, "jaccard": jaccard, "batch_size": batch_size},
           "pretrain_s": round(pretrain_s, 1), "meta": run_metadata(seed), "runs": {}}
    profiles = {}
    arms = {"full": ["profile.fraction=1.0"], "fixed": ["profile.fraction=0.1"],
            "stable": ["profile.fraction=0.1", "profile.until_stable=true", f"profile.stable_window={window}",
                       f"profile.stable_jaccard={jaccard}"]}
    for name, overrides in arms.items():
        config = load_run_config(None, overrides + [f"profile.batch_size={batch_size}", f"profile.seed={seed}"])
        sample, src = profile_sample(config, features, source)
        tick = time.perf_counter()
        profiles[name] = forward_profile(model, sample, config, tokenizer.pad_token_id, src, _OneProcess(), False)
        wall = time.perf_counter() - tick
        used = profiles[name].meta.get("until_stable", {}).get("fraction_used", config.profile.fraction)
        out["runs"][name] = {"wall_s": round(wall, 3), "fraction_used": used, "examples": len(sample),
                             "until_stable": profiles[name].meta.get("until_stable")}
    for name in ("fixed", "stable"):
        out["runs"][name]["vs_full"] = compare_profiles(profiles[name], profiles["full"])
    out["stable_vs_fixed"] = compare_profiles(profiles["stable"], profiles["fixed"])
    out["hot_sets"] = {name: {str(l): v for l, v in p.select("layer", 2).experts.items()}
                       for name, p in profiles.items()}
    return out


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--pretrain-steps", type=int, default=200)
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    result = run(args.pretrain_steps, args.examples, seed=args.seed)
    atomic_write_json(args.out, result)
    for name, r in result["runs"].items():
        vs = r.get("vs_full", {})
        print(f"{name:<7} fraction {r['fraction_used']:.4f}  wall {r['wall_s']:.2f} s"
              + (f"  Jaccard vs full {vs['jaccard']:.3f}" if vs else ""))
    print(f"stable vs fixed: Jaccard {result['stable_vs_fixed']['jaccard']:.3f}")


if __name__ == "__main__":
    main()
