"""`hellora demo`: the whole method on a model small enough to train on two CPU cores in about two minutes.

1. Build a tiny OLMoE-architecture MoE (random init) and hellora's character tokenizer, in-process.
2. Teach it a mixture of synthetic skills (arithmetic, string and list skills) with the router's load-balancing
   loss on, until its experts specialise; the target skill gets only a few examples, so it stays weak.
3. Profile the target skill's routing (forward passes), select the top-k hot experts per layer.
4. Fine-tune a copy with HELLoRA (attention + router + hot experts) and one with LoRA (all experts), same rank,
   steps and learning rate, and compare exact-match accuracy on held-out prompts of the target skill (and on the
   other skills: what fine-tuning costs them), trainable parameters and step time.
5. Save `demo.json` (every number printed) and `expert_heatmap.png` (per-skill routing, hot experts boxed).
6. Save the pretrained MoE and its tokenizer as a standard transformers folder, `base-model/`
   (`AutoModelForCausalLM` / `AutoTokenizer` load it), and the skill data as JSONL under `data/`
   (`<target>-train.jsonl`: the fine-tuning set; `<skill>-test.jsonl`: the held-out prompts of every skill), so
   every other command (`recipes/cpu/`) runs on the demo's model with no download: the CLI's embedded default.

Deterministic for a seed on a given machine (same thread count); step 6 writes files only, after every number
is computed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING


from hellora.adapters import AdapterConfig
from hellora.adapters.accounting import count_parameters
from hellora.data import PadCollator, build_tiny_tokenizer
from hellora.data.skills import generate_skill_examples
from hellora.methods.registry import get_method
from hellora.profiling import profile_experts
from hellora.report.heatmap import plot_activation_heatmaps
from hellora.study.pretrain_finetune import SkillMoESpec, finetune_copy, mixture_features, pretrain_skill_moe
from hellora.study.skill_moe import StepSchedule, accuracy, skill_features
from hellora.utils.io import atomic_dir, atomic_write_json, atomic_write_text
from hellora.utils.ownership import OutputKind, mark_folder
from hellora.utils.meta import run_metadata
from hellora.choices import Method

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)


# the compared methods, named as a recipe names them: hot-expert LoRA against LoRA on every expert
ARMS = tuple(Method.parse(name, "demo arm") for name in ("hellora", "lora"))

@dataclass
class DemoConfig:
    """The demo's preset of the small-study core: one base (`moe_spec`), one rare target, HELLoRA vs LoRA."""

    seed: int = 0
    skills: tuple = ("copy", "upper", "reverse", "sort", "max")
    target: str = "sort"
    pretrain_per_skill: int = 800
    target_pretrain: int = 40            # the target skill is rare in pretraining
    finetune_examples: int = 400
    eval_examples: int = 40
    hidden_size: int = 128
    layers: int = 3
    experts: int = 8
    top_k: int = 2
    pretrain_steps: int = 450
    pretrain_lr: float = 3e-3
    finetune_steps: int = 60
    finetune_lr: float = 3e-3
    rank: int = 8
    batch_size: int = 64                 # pretraining and fine-tuning alike

    def moe_spec(self) -> SkillMoESpec:
        return SkillMoESpec(hidden_size=self.hidden_size, layers=self.layers, experts=self.experts, top_k=self.top_k,
                            pretrain_steps=self.pretrain_steps, pretrain_lr=self.pretrain_lr,
                            pretrain_batch=self.batch_size)


def run_demo(out_dir: str | Path = "hellora-demo", cfg: DemoConfig | None = None, progress: bool = True) -> dict:
    from accelerate import Accelerator

    cfg = cfg or DemoConfig()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    mark_folder(out, OutputKind.DEMO)  # hellora's: `hellora demo --overwrite` may replace it (utils/ownership.py)
    started = time.perf_counter()
    accelerator = Accelerator(cpu=True)
    tokenizer = build_tiny_tokenizer()
    say = print if progress else (lambda *a, **k: None)

    # 1-2. pretrain a tiny MoE on the skill mixture (target skill rare)
    tests = {s: generate_skill_examples(s, cfg.eval_examples, seed=cfg.seed + 1, split="test") for s in cfg.skills}
    pretrain = mixture_features(tokenizer, [(s, cfg.target_pretrain if s == cfg.target else cfg.pretrain_per_skill)
                                            for s in cfg.skills], seed=cfg.seed, split="train")
    say(f"[1/4] pretraining a {cfg.layers}-layer, {cfg.experts}-expert (top-{cfg.top_k}) MoE on "
        f"{len(cfg.skills)} skills ({len(pretrain)} examples)")
    timings = {}
    tick = time.perf_counter()
    model, base_run = pretrain_skill_moe(cfg.moe_spec(), len(tokenizer), pretrain, accelerator, init_seed=cfg.seed,
                                         train_seed=0, name="pretrain")  # batch order: one for every seed
    timings["pretrain_s"] = time.perf_counter() - tick
    tick = time.perf_counter()
    before = {s: accuracy(model, tokenizer, tests[s]) for s in cfg.skills}
    timings["evaluate_base_s"] = time.perf_counter() - tick

    # 3. profile every skill (for the heatmap) and select the target's hot experts
    say(f"[2/4] profiling expert routing per skill; target skill: {cfg.target}")
    collate = PadCollator(tokenizer.pad_token_id)
    profiles = {}
    for s in cfg.skills:
        feats = skill_features(tokenizer, generate_skill_examples(s, 200, seed=cfg.seed + 2, split="train"))
        profiles[s] = profile_experts(model, [collate(feats[i:i + 64]) for i in range(0, len(feats), 64)],
                                      source={"skill": s}, model_id="hellora-demo", progress=False)
    placement = profiles[cfg.target].select("layer", cfg.top_k)
    skew = profiles[cfg.target].top_k_share()

    # 4. fine-tune HELLoRA and LoRA from the same pretrained weights
    finetune_examples = generate_skill_examples(cfg.target, cfg.finetune_examples, seed=cfg.seed + 3, split="train")
    finetune = skill_features(tokenizer, finetune_examples)
    results = {}
    for method in ARMS:
        rules = get_method(method)
        say(f"[3/4] fine-tuning with {rules.label}")
        tick = time.perf_counter()
        tuned, run = finetune_copy(model, AdapterConfig(method=method, r=cfg.rank, alpha=2 * cfg.rank, seed=cfg.seed),
                                   placement if rules.adapts_hot_experts else None, finetune,
                                   StepSchedule(cfg.finetune_steps, cfg.finetune_lr, cfg.batch_size), accelerator,
                                   method)
        timings[f"finetune_{method}_s"] = time.perf_counter() - tick
        params = count_parameters(tuned)
        results[method] = {"accuracy": {s: accuracy(tuned, tokenizer, tests[s]) for s in cfg.skills},
                           "trainable": params["trainable"], "trainable_pct": params["trainable_pct"],
                           "median_step_s": run.median_step_s, "final_loss": run.final_loss}

    say("[4/4] writing the report")
    heatmap = plot_activation_heatmaps({s: profiles[s] for s in cfg.skills}, out / "expert_heatmap.png",
                                       placements={cfg.target: placement},
                                       title=f"share of top-{cfg.top_k} assignments per layer; boxes: hot experts "
                                             f"of '{cfg.target}'")
    report = {
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.__dict__.items()},
        "target": cfg.target, "pretrain_final_loss": base_run.final_loss, "before": before, "results": results,
        "hot_experts": {str(k): v for k, v in placement.experts.items()},
        "target_top_k_share": {str(k): round(v, 4) for k, v in skew.items()},
        "wall_time_s": round(time.perf_counter() - started, 1), "timings_s": {k: round(v, 1) for k, v in timings.items()},
        "meta": run_metadata(cfg.seed),
        "heatmap": str(heatmap),
    }
    report["base_model"] = str(save_base_model(model, tokenizer, out / "base-model"))
    report["data"] = save_skill_data(out / "data", {f"{cfg.target}-train": finetune_examples,
                                                    **{f"{s}-test": tests[s] for s in cfg.skills}})
    atomic_write_json(out / "demo.json", report)
    mark_folder(out, OutputKind.DEMO, finished=True)
    if progress:
        print(format_demo_report(report))
    return report


def save_base_model(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, folder: Path) -> Path:
    """The pretrained skill MoE + tokenizer as a transformers folder (safetensors), written whole."""
    with atomic_dir(folder) as tmp:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
    return folder


def save_skill_data(folder: Path, sets: dict[str, list[dict]]) -> dict[str, str]:
    """Each {prompt, answer, skill} list as `folder/<name>.jsonl` (the `skill` task of `hellora.data.tasks`)."""
    import json

    paths = {}
    for name, rows in sets.items():
        path = folder / f"{name}.jsonl"
        atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))
        paths[name] = str(path)
    return paths


def format_demo_report(report: dict) -> str:
    target = report["target"]
    others = [s for s in report["before"] if s != target]
    lines = [
        "",
        f"target skill '{target}': top-k experts hold "
        f"{100 * sum(report['target_top_k_share'].values()) / len(report['target_top_k_share']):.0f}% of its "
        f"assignments per layer (uniform would be "
        f"{100 * report['config']['top_k'] / report['config']['experts']:.0f}%)",
        "",
        f"{'':<10}{'target acc':>12}{'other skills':>14}{'trainable':>12}{'params %':>10}{'step s':>9}",
        f"{'base':<10}{report['before'][target]:>12.2f}"
        f"{sum(report['before'][s] for s in others) / len(others):>14.2f}{'-':>12}{'-':>10}{'-':>9}",
    ]
    for method, r in report["results"].items():
        acc = r["accuracy"]
        label = get_method(Method.parse(method, "demo.json: results")).label
        lines.append(f"{label:<10}{acc[target]:>12.2f}"
                     f"{sum(acc[s] for s in others) / len(others):>14.2f}{r['trainable']:>12,}"
                     f"{r['trainable_pct']:>10.2f}{r['median_step_s']:>9.3f}")
    lines += ["", f"heatmap: {report['heatmap']}   numbers: {Path(report['heatmap']).parent / 'demo.json'}   "
                  f"({report['wall_time_s']:.0f} s)"]
    return "\n".join(lines)
