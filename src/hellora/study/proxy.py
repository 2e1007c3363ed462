"""The proxy study: does hot-expert placement beat LoRA when the experts are really specialised?

Pretrained MoE weights cannot be downloaded here, so the paper's accuracy tables cannot be rerun. Instead:
1. pretrain a small OLMoE-architecture MoE on a mixture of synthetic skills with the load-balancing loss on
   (balanced overall, skewed per skill within a layer), save it and per-skill activation heatmaps;
2. fine-tune on a target skill with limited data, once per method and seed, same rank and steps:
   LoRA (all experts), HELLoRA (layer-level hot), model-level hot, random, cold, LoRI-D, HELLoRI-D;
3. write every (method, seed) as a run folder `hellora report` reads, the report itself, and `study.json` with
   mean +- std per method and which of the paper's Table 4 orderings (layer > model > random > LoRA > cold) hold.

    hellora proxy --config recipes/proxy/study.yaml --out runs/proxy
"""

from __future__ import annotations

import copy
import statistics
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import yaml

from hellora.adapters import AdapterConfig, attach_adapters
from hellora.adapters.accounting import count_parameters
from hellora.data import PadCollator, build_tiny_tokenizer
from hellora.data.skills import generate_skill_examples
from hellora.data.text_snippets import text_snippets
from hellora.profiling import ExpertProfile, profile_experts
from hellora.report.heatmap import plot_activation_heatmaps
from hellora.study.toy import accuracy, build_skill_moe, skill_features, train_steps
from hellora.utils.errors import HelloraError
from hellora.utils.io import atomic_dir, atomic_write_json, atomic_write_text, read_json
from hellora.utils.meta import run_metadata

# method -> (adapter method, variant, selection strategy or None)
METHODS = {
    "lora": ("lora", "none", None),
    "hellora": ("hellora", "none", "layer"),
    "model-hot": ("hellora", "none", "model"),
    "random": ("hellora", "none", "random"),
    "cold": ("hellora", "none", "cold"),
    "lori-d": ("lora", "lori_d", None),
    "hellori-d": ("hellora", "lori_d", "layer"),
}
PRETRAIN_FIELDS = ("seed", "skills", "target", "target_pretrain", "pretrain_per_skill", "text_files", "text_examples",
                   "hidden_size", "intermediate_size", "layers", "experts", "top_k", "pretrain_steps", "pretrain_lr",
                   "batch_size")
PAPER_ORDER = ["hellora", "model-hot", "random", "lora", "cold"]  # Table 4, best first


@dataclass
class ProxyConfig:
    seed: int = 0
    skills: list = field(default_factory=lambda: ["add", "sub", "mul", "max", "sort", "reverse", "copy", "count"])
    target: str = "word"                 # held out of pretraining: GSM8K-style two-step word problems
    target_pretrain: int = 0             # examples of the target in pretraining (0: held out)
    pretrain_per_skill: int = 4000
    text_files: list = field(default_factory=list)  # real text mixed into pretraining (JSON/JSONL/CSV by path)
    text_examples: int = 0               # snippets of that text (data/text_snippets.py); 0: skills only
    finetune_examples: int = 512         # limited target data
    eval_examples: int = 200
    hidden_size: int = 512
    intermediate_size: int = 256
    layers: int = 8
    experts: int = 64
    top_k: int = 8
    pretrain_steps: int = 3000
    pretrain_lr: float = 2e-3
    finetune_steps: int = 200
    finetune_lr: float = 1e-3
    rank: int = 16
    batch_size: int = 128
    methods: list = field(default_factory=lambda: list(METHODS))
    seeds: list = field(default_factory=lambda: [0, 1, 2, 3, 4])

    @classmethod
    def from_yaml(cls, path: str | Path | None, overrides: dict | None = None) -> "ProxyConfig":
        from hellora.config import read_recipe

        data = read_recipe(path) if path else {}
        data = {**(data or {}), **(overrides or {})}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise HelloraError(f"proxy config: unknown key {unknown[0]!r}; known: {', '.join(sorted(known))}")
        bad = [m for m in data.get("methods", []) if m not in METHODS]
        if bad:
            raise HelloraError(f"proxy config: unknown method {bad[0]!r}; choose from {', '.join(METHODS)}")
        return cls(**data)


def _pretrained(cfg: ProxyConfig, out: Path, tokenizer, accelerator, progress: bool):
    """Pretrain once; a saved checkpoint in out/pretrained is reused (the study can be rerun method by method)."""
    from transformers import AutoModelForCausalLM

    folder = out / "pretrained"
    recipe = {k: v for k, v in asdict(cfg).items() if k in PRETRAIN_FIELDS}
    if not cfg.text_examples:  # skills only: the record of studies from before real text could be mixed in
        recipe = {k: v for k, v in recipe.items() if k not in ("text_files", "text_examples")}
    if (folder / "study_pretrain.json").is_file():  # written last: the folder is complete
        if read_json(folder / "study_pretrain.json", "pretrain record") != recipe:
            raise HelloraError(f"{folder} holds a model pretrained with another config; choose another --out")
        return AutoModelForCausalLM.from_pretrained(folder), None
    model = build_skill_moe(len(tokenizer), hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
                            layers=cfg.layers, experts=cfg.experts, top_k=cfg.top_k, seed=cfg.seed)
    data = []
    for skill in cfg.skills + ([cfg.target] if cfg.target_pretrain else []):
        n = cfg.target_pretrain if skill == cfg.target else cfg.pretrain_per_skill
        data += skill_features(tokenizer, generate_skill_examples(skill, n, seed=cfg.seed, split="train"))
    if cfg.text_examples:
        data += skill_features(tokenizer, text_snippets(cfg.text_files, cfg.text_examples, seed=cfg.seed))
    result = train_steps(model, data, cfg.pretrain_steps, cfg.pretrain_lr, cfg.batch_size, accelerator, "pretrain",
                         seed=cfg.seed, progress=progress)
    model.config.output_router_logits = False
    with atomic_dir(folder) as tmp:
        model.save_pretrained(tmp)
        atomic_write_json(tmp / "study_pretrain.json", recipe)
    return model, result


def _profiles(cfg: ProxyConfig, model, tokenizer) -> dict[str, ExpertProfile]:
    collate = PadCollator(tokenizer.pad_token_id)
    profiles = {}
    for skill in cfg.skills + [cfg.target]:
        feats = skill_features(tokenizer, generate_skill_examples(skill, 256, seed=cfg.seed + 2, split="train"))
        profiles[skill] = profile_experts(model, [collate(feats[i:i + 64]) for i in range(0, len(feats), 64)],
                                          source={"skill": skill}, model_id="proxy", progress=False)
    return profiles


def _write_run(folder: Path, method: str, seed: int, cfg: ProxyConfig, params: dict, train, scores: dict) -> None:
    adapter, variant, strategy = METHODS[method]
    folder.mkdir(parents=True, exist_ok=True)
    config = {"model": {"name": "proxy-moe"}, "data": {"task": f"proxy-{cfg.target}"},
              "adapter": {"method": adapter, "variant": variant, "r": cfg.rank},
              "selection": {"strategy": strategy or "layer", "seed": seed}}
    atomic_write_text(folder / "config.yaml", yaml.safe_dump(config, sort_keys=False))
    atomic_write_json(folder / "eval" / "eval_proxy.json", {"task": "proxy", "scores": scores})
    atomic_write_json(folder / "run.json", {
        "status": "finished", "method": adapter, "meta": run_metadata(seed),
        "steps": {"attach": {k: params[k] for k in ("trainable", "total", "trainable_pct")},
                  "train": {k: v for k, v in train.to_dict().items() if k != "losses"}}})


def ordering(means: dict[str, float]) -> list[dict]:
    """Each adjacent pair of the paper's Table 4 order, and whether it holds here."""
    present = [m for m in PAPER_ORDER if m in means]
    return [{"pair": f"{a} > {b}", "holds": means[a] > means[b], "difference": round(means[a] - means[b], 4)}
            for a, b in zip(present, present[1:])]


def run_proxy(cfg: ProxyConfig, out_dir: str | Path, *, progress: bool = True) -> dict:
    from accelerate import Accelerator

    from hellora.report.tables import write_report

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    accelerator = Accelerator(cpu=not __import__("torch").cuda.is_available())
    tokenizer = build_tiny_tokenizer()
    start = time.perf_counter()
    model, pretrain = _pretrained(cfg, out, tokenizer, accelerator, progress)
    model.to(accelerator.device)
    profiles = _profiles(cfg, model, tokenizer)
    for name, profile in profiles.items():
        profile.save(out / "profiles" / f"{name}.json")
    target = profiles[cfg.target]
    plot_activation_heatmaps(profiles, out / "heatmaps.png", placements={cfg.target: target.select("layer", cfg.top_k)},
                             title=f"per-skill routing after pretraining; boxes: hot experts of '{cfg.target}'")
    finetune = skill_features(tokenizer, generate_skill_examples(cfg.target, cfg.finetune_examples, seed=cfg.seed + 3,
                                                                 split="train"))
    test = generate_skill_examples(cfg.target, cfg.eval_examples, seed=cfg.seed + 4, split="test")
    others = {s: generate_skill_examples(s, min(64, cfg.eval_examples), seed=cfg.seed + 4, split="test")
              for s in cfg.skills}
    base = {"target": accuracy(model, tokenizer, test),
            "others": statistics.mean(accuracy(model, tokenizer, v) for v in others.values())}
    runs, results = [], {}
    for method in cfg.methods:
        adapter, variant, strategy = METHODS[method]
        for seed in cfg.seeds:
            folder = out / "runs" / f"{method}-seed{seed}"
            tuned = copy.deepcopy(model)
            placement = target.select(strategy, cfg.top_k, seed=seed) if strategy else None
            attach_adapters(tuned, AdapterConfig(method=adapter, variant=variant, r=cfg.rank, alpha=2 * cfg.rank,
                                                 seed=seed), placement)
            train = train_steps(tuned, finetune, cfg.finetune_steps, cfg.finetune_lr, min(cfg.batch_size,
                                len(finetune)), accelerator, f"{method} s{seed}", seed=seed, progress=progress)
            scores = {"accuracy": accuracy(tuned, tokenizer, test),
                      "others": statistics.mean(accuracy(tuned, tokenizer, v) for v in others.values())}
            params = count_parameters(tuned)
            _write_run(folder, method, seed, cfg, params, train, scores)
            results.setdefault(method, []).append({**scores, "trainable_pct": params["trainable_pct"],
                                                   "median_step_s": train.median_step_s})
            runs.append(folder)
            del tuned
    summary = {}
    for method, rows in results.items():
        acc = [r["accuracy"] for r in rows]
        summary[method] = {"accuracy_mean": statistics.mean(acc), "accuracy_std": statistics.stdev(acc) if len(acc) > 1
                           else 0.0, "others_mean": statistics.mean(r["others"] for r in rows),
                           "trainable_pct": rows[0]["trainable_pct"],
                           "median_step_s": statistics.median(r["median_step_s"] for r in rows), "seeds": len(rows)}
    study = {"config": asdict(cfg), "base": base, "summary": summary,
             "ordering_vs_paper_table4": ordering({m: s["accuracy_mean"] for m, s in summary.items()}),
             "target_top_k_share": {str(k): round(v, 4) for k, v in target.top_k_share().items()},
             "pretrain_final_loss": pretrain.final_loss if pretrain else None,
             "wall_time_s": round(time.perf_counter() - start, 1), "meta": run_metadata(cfg.seed)}
    atomic_write_json(out / "study.json", study)
    write_report(runs, out / "report")
    return study
