"""The `hellora` command line: parse, call one library function, print or save.

    hellora demo
    hellora train   recipes/olmoe-1b-7b/gsm8k-hellora.yaml train.epochs=1
    hellora params  --model olmoe-1b-7b --method hellora --k 8 --json
    hellora profile recipes/olmoe-1b-7b/gsm8k-hellora.yaml profile.fraction=0.1 --out profile.json
    hellora select  --profile profile.json --strategy layer --k 8 --out placement.json
    hellora compare profile_10pct.json profile_full.json
    hellora export  --adapter runs/x/adapter --format peft --out runs/x/peft

Errors in the user's input (`HelloraError`) print one line and exit with status 2, with no traceback.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

from hellora.placement import STRATEGIES
from hellora.utils.errors import HelloraError
from hellora.vocab import Method, Targets, Variant

log = logging.getLogger("hellora")


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2))


def _key_values(items: list[str], what: str) -> dict:
    """`key=value` strings -> dict with YAML-typed values."""
    import yaml

    values = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise HelloraError(f"{what} {item!r}: expected key=value")
        try:
            values[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            values[key] = value
    return values


def cmd_params(args) -> None:
    from hellora.adapters.accounting import parameter_report

    report = parameter_report(args.model, args.method, k=args.k, r=args.rank, alpha=args.alpha,
                              targets=args.placement, trust_remote_code=args.trust_remote_code,
                              variant=args.variant, lori_density=args.lori_density,
                              loramoe_experts=args.loramoe_experts)
    if args.json:
        _print_json({"trainable": report["trainable"], "total": report["total"],
                     "trainable_pct": round(report["trainable_pct"], 4), **{k: report[k] for k in
                     ("model", "method", "k", "r", "targets", "num_experts", "top_k", "moe_layers", "by_role")
                     if k in report}, "variant": args.variant, "adapter_total": report.get("adapter_total")})
        return
    print(f"{report['model']}  method={report['method']}  k={report['k']}  r={report['r']}  "
          f"targets={report['targets']}")
    print(f"trainable {report['trainable']:,} / total {report['total']:,} = {report['trainable_pct']:.3f}%")
    for role, n in report["by_role"].items():
        print(f"  {role:<10} {n:>14,}")


def cmd_flops(args) -> None:
    from hellora.adapters import AdapterConfig, attach_adapters
    from hellora.flops import adapter_flops
    from hellora.models.families import describe_moe_model
    from hellora.models.loading import meta_model
    from hellora.placement import HotExpertPlacement
    from hellora.profiling.profile import ExpertProfile
    from hellora.vocab import resolve_hot_k

    profile = ExpertProfile.load(args.profile) if args.profile else None
    rows = {}
    for method in [m.strip() for m in args.methods.split(",")]:
        net = meta_model(args.model, trust_remote_code=args.trust_remote_code)
        spec = describe_moe_model(net)
        k = resolve_hot_k(args.k, spec.top_k)
        placement = None
        if method == "hellora":
            placement = profile.select(args.strategy, k) if profile else HotExpertPlacement(
                {l: list(range(k)) for l in spec.moe_layer_indices}, spec.num_experts, "first-k", k=k)
        attach_adapters(net, AdapterConfig(method=method, r=args.rank or (4 if method == "loramoe" else 32)),
                        placement, spec)
        rows[method] = adapter_flops(net, profile)
    base = rows.get("lora", {}).get("forward_per_token")
    for row in rows.values():
        row["vs_lora_pct"] = round(100 * (row["forward_per_token"] / base - 1), 2) if base else None
    if args.json:
        _print_json(rows)
        return
    source = "measured routing" if profile else "uniform routing (no --profile)"
    print(f"adapter FLOPs per token on {args.model}, {source}")
    for method, row in rows.items():
        delta = f"  ({row['vs_lora_pct']:+.1f}% vs LoRA)" if row["vs_lora_pct"] is not None and method != "lora" else ""
        print(f"  {method:<8} forward {row['forward_per_token'] / 1e6:9.2f} MFLOP   train "
              f"{row['train_per_token'] / 1e6:9.2f} MFLOP{delta}")


def cmd_profile(args) -> None:
    from hellora.config import load_run_config
    from hellora.train.pipeline import profile_only

    profile = profile_only(load_run_config(args.recipe, args.overrides), args.out, progress=not args.no_progress)
    shares = profile.top_k_share()
    print(f"{args.out}: {len(profile.layers)} MoE layers, {profile.tokens[0] if profile.tokens else 0} tokens; "
          f"top-{profile.top_k} experts hold {100 * sum(shares.values()) / len(shares):.1f}% of assignments per layer")


def cmd_select(args) -> None:
    from hellora.profiling.profile import ExpertProfile

    profile = ExpertProfile.load(args.profile)
    placement = profile.select(args.strategy, args.k, seed=args.seed, p=args.p)
    placement.save(args.out)
    sizes = sorted({len(v) for v in placement.experts.values()})
    print(f"{args.out}: {placement.strategy} placement, {placement.total_experts} experts over "
          f"{len(placement.experts)} layers (per layer: {sizes})")


def cmd_compare(args) -> None:
    from hellora.profiling.profile import ExpertProfile, compare_profiles

    result = compare_profiles(ExpertProfile.load(args.profile), ExpertProfile.load(args.reference), k=args.k)
    if args.json:
        _print_json(result)
    else:
        print(f"k={result['k']}  Jaccard {result['jaccard']:.3f}  coverage {100 * result['coverage']:.1f}%")


def cmd_export(args) -> None:
    from hellora.adapters.export import export_merged, export_peft
    from hellora.adapters.io import attach_from_record, load_adapter, read_adapter_record, read_adapter_tensors
    from hellora.models.loading import load_model, meta_model

    record = read_adapter_record(args.adapter)
    model_ref = args.model or record.get("base_model")
    if not model_ref:
        raise HelloraError(f"adapter {args.adapter} does not name its base model; pass --model")
    if args.format == "peft":
        # PEFT export needs shapes, not weights: build the model on the meta device.
        model = meta_model(model_ref, trust_remote_code=args.trust_remote_code)
        attach_from_record(model, record, where=f"adapter {args.adapter}")
        out = export_peft(model, args.out, base_model=model_ref, tensors=read_adapter_tensors(args.adapter))
    else:
        model = load_model(model_ref, dtype=args.dtype, trust_remote_code=args.trust_remote_code)
        load_adapter(model, args.adapter)
        out = export_merged(model, args.out)
    print(f"wrote {args.format} export to {out}")


def cmd_demo(args) -> None:
    import torch

    from hellora.demo.run import DemoConfig, run_demo

    if args.threads:
        torch.set_num_threads(args.threads)
    run_demo(args.out, DemoConfig(seed=args.seed), progress=True)


def cmd_bench(args) -> None:
    from hellora.bench.throughput import SETUPS, BenchConfig, check_setup, format_table, run_bench
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
                      setups=setups, overrides=overrides)
    result = run_bench(cfg, progress=not args.json)
    if args.out:
        atomic_write_json(args.out, result)
    _print_json(result) if args.json else print(format_table(result))


def cmd_report(args) -> None:
    from hellora.report.tables import write_report

    path = write_report(args.runs, args.out)
    print(path.read_text() if not args.quiet else path)


def cmd_sweep(args) -> None:
    from hellora.sweep import run_sweep

    done = run_sweep(args.sweep, args.overrides, dry_run=args.dry_run, progress=not args.no_progress)
    if not args.dry_run:
        print(f"{len(done)} runs finished")


def cmd_proxy(args) -> None:
    from hellora.study.proxy import ProxyConfig, run_proxy

    overrides = _key_values(args.overrides, "override")
    study = run_proxy(ProxyConfig.from_yaml(args.config, overrides), args.out, progress=not args.no_progress)
    for method, row in study["summary"].items():
        print(f"{method:<10} target {100 * row['accuracy_mean']:6.2f} +- {100 * row['accuracy_std']:5.2f}   "
              f"others {100 * row['others_mean']:6.2f}   params {row['trainable_pct']:.3f}%   "
              f"step {row['median_step_s']:.4f}s")
    for pair in study["ordering_vs_paper_table4"]:
        print(f"  paper order {pair['pair']}: {'holds' if pair['holds'] else 'does NOT hold'} "
              f"({100 * pair['difference']:+.2f} points)")


def cmd_train(args) -> None:
    from hellora.config import load_run_config
    from hellora.train.pipeline import run_training

    config = load_run_config(args.recipe, args.overrides)
    result = run_training(config, progress=not args.no_progress)
    train = result["steps"].get("train", {})
    print(f"finished: {config.output_dir}  steps={train.get('steps')}  final loss={train.get('final_loss')}  "
          f"samples/s={train.get('samples_per_s')}")


def _model_and_tokenizer(args):
    from hellora.adapters.io import load_adapter
    from hellora.models.loading import load_model, load_tokenizer

    model = load_model(args.model, dtype=args.dtype, trust_remote_code=args.trust_remote_code)
    if args.adapter:
        load_adapter(model, args.adapter)
    if args.tokenizer == "tiny":
        from hellora.data import build_tiny_tokenizer

        tokenizer = build_tiny_tokenizer()
    else:
        tokenizer = load_tokenizer(args.tokenizer or args.model, trust_remote_code=args.trust_remote_code)
    import torch

    if torch.cuda.is_available():
        model.to("cuda")
    return model, tokenizer


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


def cmd_eval(args) -> None:
    from dataclasses import replace

    from hellora.eval.run import DEFAULTS, EVAL_TASKS, cross_task, evaluate_task, headline, write_eval_summary

    try:
        ks = tuple(int(k) for k in args.k.split(",")) if args.k else (1, 5, 10)
    except ValueError:
        raise HelloraError(f"--k: expected comma-separated integers such as 1,5,10, got {args.k!r}") from None
    if args.mode == "humaneval" and args.samples:  # score completions made anywhere
        from hellora.eval.humaneval import evaluate_humaneval_samples

        if not args.problems:
            raise HelloraError("--problems: path to HumanEval.jsonl.gz is required")
        result = evaluate_humaneval_samples(args.samples, args.problems, ks=ks, progress=not args.json)
        summary = {k: v for k, v in result.items() if k != "per_task"}
        _print_json(summary) if args.json else print({k: v for k, v in summary.items() if k.startswith("pass@")})
        return
    if not args.task or not args.model:
        raise HelloraError("give --task and --model (or: hellora eval humaneval --samples FILE --problems FILE)")
    tasks = [t.strip() for t in args.task.split(",")]
    for t in tasks:
        if t not in EVAL_TASKS:
            raise HelloraError(f"--task: unknown task {t!r}; choose from {', '.join(EVAL_TASKS)}")
    data = _data_paths(args.data, tasks)
    if args.backend == "vllm" and args.adapter:
        raise HelloraError("--backend vllm runs a merged checkpoint: export one with `hellora export --format merged` "
                           "and pass it as --model, without --adapter")
    out = args.out or (str(__import__("pathlib").Path(args.adapter).parent / "eval") if args.adapter else "eval")
    model, tokenizer = _model_and_tokenizer(args)
    if args.cross_task:
        if not args.adapter:
            raise HelloraError("--cross-task compares before/after an adapter: give --adapter")
        matrix = cross_task(model, tokenizer, data, out_dir=out, limit=args.limit, batch_size=args.batch_size,
                            progress=not args.json, num_samples=args.num_samples,
                            max_new_tokens=args.max_new_tokens, overwrite=args.overwrite)
        _print_json(matrix) if args.json else [print(t, v) for t, v in matrix.items()]
        return
    reports = []
    for task in tasks:
        settings = DEFAULTS[task]
        if args.max_new_tokens:
            settings = replace(settings, max_new_tokens=args.max_new_tokens)
        if args.num_samples:
            settings = replace(settings, num_samples=args.num_samples)
        report = evaluate_task(task, model, tokenizer, out_dir=out, data=data[task], limit=args.limit,
                               settings=settings, batch_size=args.batch_size, backend=args.backend,
                               merged_dir=args.model, ks=ks, progress=not args.json, overwrite=args.overwrite,
                               sources={"model": args.model, "adapter": args.adapter})
        reports.append(report)
        _print_json(report) if args.json else print(f"{task}: {headline(report)}  ({out}/eval_{task}.json)")
    write_eval_summary(out, reports, {"model": args.model, "adapter": args.adapter})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hellora", description="Hot-expert LoRA for Mixture-of-Experts models")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("params", help="trainable / total parameters of a method on a model (offline)")
    p.add_argument("--model", required=True, help="preset (olmoe-1b-7b, mixtral-8x7b, deepseek-moe-16b, "
                   "qwen3-30b-a3b), local folder or hub id")
    p.add_argument("--method", choices=Method.values(), default="hellora")
    p.add_argument("--variant", choices=Variant.values(), default="none",
                   help="DoRA or LoRI on top of lora/hellora (hellora + lori_* = HELLoRI)")
    p.add_argument("--lori-density", type=float, default=0.1, help="share of B entries LoRI-S trains")
    p.add_argument("--loramoe-experts", type=int, default=6)
    p.add_argument("--k", type=int, default=None, help="hot experts per layer (default: the router's top-k)")
    p.add_argument("--rank", type=int, default=None, help="LoRA rank (default 32; LoRAMoE 4)")
    p.add_argument("--alpha", type=float, default=64.0)
    p.add_argument("--placement", choices=Targets.values(), default="all")
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_params)

    p = sub.add_parser("demo", help="the whole method on a tiny MoE trained in-process on CPU (no network)")
    p.add_argument("--out", default="hellora-demo", help="where demo.json and expert_heatmap.png go")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("bench", help="step time and peak memory: frozen / hellora / lora / PEFT, side by side")
    p.add_argument("--model", default="olmoe-1b-7b", help="preset or config folder (weights are random)")
    p.add_argument("--layers", type=int, default=4, help="decoder layers to keep (0: all)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    p.add_argument("--k", type=int, default=None, help="hot experts per layer (default: the router's top-k)")
    p.add_argument("--rank", type=int, default=32)
    p.add_argument("--hot-share", type=float, default=0.5, help="share of assignments routed to the k hot experts "
                   "(0: leave the random router alone)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--setups", default=None, help="comma-separated subset of frozen,hellora,lora,peft-lora,peft-attn; "
                   "hellora and lora take suffixes to compare paths: a kernel @reference, @torch or @triton, and @unfused "
                   "(no shared q/k/v A product), e.g. hellora@reference@unfused")
    p.add_argument("--override", action="append", help="model config field, e.g. hidden_size=256 (repeatable)")
    p.add_argument("--out", help="write the JSON result here")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_bench)

    p = sub.add_parser("sweep", help="run a paper table: base recipe x override sets x seeds (recipes/paper/)")
    p.add_argument("sweep", help="sweep YAML (see recipes/paper/)")
    p.add_argument("overrides", nargs="*", help="key=value overrides applied to every run")
    p.add_argument("--dry-run", action="store_true", help="print the runs, train nothing")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("proxy", help="the proxy study: pretrain a small MoE on skills, compare placements (GPU)")
    p.add_argument("overrides", nargs="*", help="key=value overrides of the study config")
    p.add_argument("--config", default=None, help="study YAML (recipes/proxy/study.yaml)")
    p.add_argument("--out", default="runs/proxy")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_proxy)

    p = sub.add_parser("report", help="markdown tables and PNG figures from saved run folders")
    p.add_argument("runs", nargs="+", help="run folders written by hellora train")
    p.add_argument("--out", default="report", help="folder for report.md and the figures")
    p.add_argument("--quiet", action="store_true", help="print only the report's path")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("train", help="profile -> select -> attach -> train -> save, from a YAML recipe")
    p.add_argument("recipe", help="YAML recipe (see recipes/)")
    p.add_argument("overrides", nargs="*", help="section.key=value overrides, e.g. train.epochs=1 adapter.r=16")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("eval", help="evaluate on GSM8K / HumanEval / HEx-PHI / AdvBench, or score HumanEval samples")
    p.add_argument("mode", nargs="?", choices=["humaneval"], help="`humaneval --samples FILE`: score completions only")
    p.add_argument("--samples", help="JSONL of {task_id, completion} to score (with mode humaneval)")
    p.add_argument("--problems", help="HumanEval.jsonl.gz")
    p.add_argument("--k", default=None, help="pass@k values, e.g. 1,5,10")
    p.add_argument("--task", help="gsm8k, humaneval, hexphi, advbench (comma-separated for several)")
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
    p.add_argument("--overwrite", action="store_true")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("flops", help="adapter FLOPs per token (forward, training), from measured routing")
    p.add_argument("--model", required=True, help="preset, local folder or hub id (config only)")
    p.add_argument("--profile", help="profile.json with the task's routing counts (default: uniform routing)")
    p.add_argument("--methods", default="lora,hellora", help="comma-separated: lora, hellora, loramoe")
    p.add_argument("--strategy", default="layer", help="selection strategy for hellora")
    p.add_argument("--k", type=int, default=None)
    p.add_argument("--rank", type=int, default=None)
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_flops)

    p = sub.add_parser("profile", help="forward-only routing counts of a recipe's model on a fraction of its data")
    p.add_argument("recipe", help="YAML recipe (model, data, profile.fraction / seed)")
    p.add_argument("overrides", nargs="*", help="section.key=value overrides")
    p.add_argument("--out", required=True, help="profile.json to write")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_profile)

    p = sub.add_parser("select", help="choose hot experts from a profile")
    p.add_argument("--profile", required=True)
    p.add_argument("--strategy", default="layer", choices=STRATEGIES)
    p.add_argument("--k", type=int, default=None, help="experts per layer (default: the router's top-k)")
    p.add_argument("--p", type=float, default=0.5, help="mass to reach for --strategy coverage")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_select)

    p = sub.add_parser("compare", help="Jaccard overlap and coverage of two profiles' hot sets")
    p.add_argument("profile")
    p.add_argument("reference")
    p.add_argument("--k", type=int, default=None)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("export", help="export an adapter for stock PEFT, or merged into the base weights")
    p.add_argument("--adapter", required=True)
    p.add_argument("--format", choices=["peft", "merged"], required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--model", default=None, help="base model (default: the one the adapter records)")
    p.add_argument("--dtype", default="auto")
    p.add_argument("--trust-remote-code", action="store_true")
    p.set_defaults(func=cmd_export)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    # key=value overrides may come after options too (`hellora sweep S.yaml --dry-run a.b=1`), which argparse's
    # positional `overrides` alone does not allow once an option has been seen
    args, extra = parser.parse_known_args(argv)
    if extra:
        if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = [*args.overrides, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(message)s")
    try:
        args.func(args)
    except HelloraError as e:
        print(f"hellora {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
