"""Cost commands: `hellora params` (trainable parameters and a per-GPU memory plan), `hellora flops`
(adapter FLOPs per token), `hellora bench` (step time side by side) and `hellora doctor` (which expert path
runs, its self-check, a micro-bench).
"""

from __future__ import annotations

import argparse
import sys

from hellora.cli.support import (
    REFERENCE_HELP,
    STRATEGY_HELP,
    check_reference_flag,
    flags,
    key_values,
    print_json,
)
from hellora.methods.registry import get_method
from hellora.placement import STRATEGIES
from hellora.utils.errors import HelloraError
from hellora.choices import Convention, ExpertPrecision, Method, Targets, Variant


def _adapts_hot_experts(method: str, variant: str) -> bool:
    """Whether --k means anything for this method: it adapts a hot subset of experts (the method registry says)."""
    from hellora.methods.registry import get_method

    return get_method(Method.parse(method, "--method"), Variant.parse(variant, "--variant")).adapts_hot_experts


class _DeprecatedAlias(argparse.Action):
    """An old flag name still accepted: sets its new flag's value and prints one deprecation line to stderr."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        print(f"hellora: {option_string} is deprecated; use --{self.dest}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def cmd_params(args: argparse.Namespace) -> None:
    if args.k is not None and not _adapts_hot_experts(args.method, args.variant):
        raise HelloraError(f"--k {args.k}: hot experts per layer apply only to --method hellora; {args.method} "
                           f"adapts every expert (drop --k)")
    from hellora.adapters.accounting import count_request, parameter_report

    config = count_request(args.method, r=args.rank, alpha=args.alpha, targets=args.targets, variant=args.variant,
                           lori_density=args.lori_density, loramoe_experts=args.loramoe_experts)
    report = parameter_report(args.model, config, k=args.k, trust_remote_code=args.trust_remote_code)
    plan = None
    if args.gpus is not None:
        from hellora.memory_plan import format_plan, model_sizes, plan_memory

        sizes = model_sizes(args.model, report["trainable"], trust_remote_code=args.trust_remote_code)
        plan = plan_memory(sizes, gpus=args.gpus, fsdp=args.fsdp, batch=args.batch, seq=args.seq,
                           experts=_expert_storage(args, report))
    if args.json:
        print_json({"trainable": report["trainable"], "total": report["total"],
                     "trainable_pct": round(report["trainable_pct"], 4), **{k: report[k] for k in
                     ("model", "method", "k", "r", "targets", "num_experts", "top_k", "moe_layers", "by_role")
                     if k in report}, "variant": args.variant, "adapter_total": report.get("adapter_total"),
                     **({"memory": plan.to_dict()} if plan else {})})
        return
    experts = f"k={report['k']}" if _adapts_hot_experts(report["method"], args.variant) \
        else f"experts=all ({report['k']})"
    print(f"{report['model']}  method={report['method']}  {experts}  r={report['r']}  "
          f"targets={report['targets']}")
    print(f"trainable {report['trainable']:,} / total {report['total']:,} = {report['trainable_pct']:.3f}%")
    for role, n in report["by_role"].items():
        print(f"  {role:<10} {n:>14,}")
    if plan:
        print(format_plan(plan))


def _expert_storage(args, report: dict):
    """`--cold-experts` / `--hot-experts` as the plan's expert storage (hot: hellora's k, every expert for lora)."""
    from hellora.memory_plan import ExpertStorage

    cold = ExpertPrecision.parse(args.cold_experts, "--cold-experts")
    hot = ExpertPrecision.parse(args.hot_experts, "--hot-experts")
    if cold is ExpertPrecision.KEEP and hot is ExpertPrecision.KEEP:
        return None
    rules = get_method(Method.parse(args.method, "--method"), Variant.parse(args.variant, "--variant"))
    if rules.quantized_experts_refusal:
        raise HelloraError(f"--cold-experts: {rules.quantized_experts_refusal}")
    return ExpertStorage(cold, hot, report["k"] if rules.adapts_hot_experts else report["num_experts"])


def add_params(sub: argparse._SubParsersAction) -> None:
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
    p.add_argument("--targets", choices=Targets.values(), default="all",
                   help="which modules carry adapters: pure: experts only; gate: + router; all: + attention")
    p.add_argument("--placement", dest="targets", choices=Targets.values(), default=argparse.SUPPRESS,
                   action=_DeprecatedAlias, help=argparse.SUPPRESS)  # the old name of --targets, for users' scripts
    p.add_argument("--gpus", type=int, default=None, help="also estimate memory per GPU for this many GPUs (default: no memory estimate)")
    p.add_argument("--fsdp", action="store_true", help="the memory estimate shards the frozen base (train.fsdp)")
    p.add_argument("--batch", type=int, default=1, help="memory estimate: sequences per GPU at once (micro-batch)")
    p.add_argument("--seq", type=int, default=2048, help="memory estimate: tokens per sequence")
    p.add_argument("--cold-experts", choices=ExpertPrecision.values(), default="keep",
                   help="memory estimate: the non-adapted experts stored as int8 / nf4 (model.cold_experts)")
    p.add_argument("--hot-experts", choices=ExpertPrecision.values(), default="keep",
                   help="memory estimate: the adapted experts' frozen weights as int8 / nf4 (QLoRA-style)")
    flags(p, "remote", "json")
    p.set_defaults(func=cmd_params)


def cmd_flops(args: argparse.Namespace) -> None:
    from hellora.flops import HotSelection, flops_report

    check_reference_flag(args.strategy, args.reference)
    hot = HotSelection.read(args.k, args.profile, args.strategy, args.reference)
    report = flops_report(args.model, args.methods.split(","), convention=args.convention, rank=args.rank, hot=hot,
                          trust_remote_code=args.trust_remote_code)
    if args.json:
        print_json(report["rows"])
        return
    source = "measured routing" if report["routing"] == "measured" else "uniform routing (no --profile)"
    print(f"adapter FLOPs per token on {args.model}, {source}, k={report['k']}, convention {report['convention']}")
    for method, row in report["rows"].items():
        delta = f"  ({row['vs_lora_pct']:+.1f}% vs LoRA)" if row["vs_lora_pct"] is not None and method != Method.LORA else ""
        print(f"  {method:<8} forward {row['forward_per_token'] / 1e6:9.2f} MFLOP   train "
              f"{row['train_per_token'] / 1e6:9.2f} MFLOP{delta}")


def add_flops(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("flops", help="adapter FLOPs per token (forward, training), from measured routing")
    p.add_argument("--model", required=True, help="preset, local folder or hub id (config only)")
    p.add_argument("--profile", help="profile.json with the task's routing counts (default: uniform routing)")
    p.add_argument("--methods", default="lora,hellora", help="comma-separated: lora, hellora, loramoe")
    p.add_argument("--strategy", default="layer", choices=STRATEGIES, help=STRATEGY_HELP)
    p.add_argument("--reference", default=None, help=REFERENCE_HELP)
    p.add_argument("--convention", choices=Convention.values(), default="exact",
                   help="exact: the adapters as they run; paper: Table 3's convention (docs/evaluation.md)")
    p.add_argument("--k", type=int, default=None, help="hot experts per layer (default: the paper's k for a preset, "
                   "else the router's top-k)")
    p.add_argument("--rank", type=int, default=None, help="LoRA rank (default: 32, the paper's; LoRAMoE 4)")
    flags(p, "json", "remote")
    p.set_defaults(func=cmd_flops)


def cmd_bench(args: argparse.Namespace) -> None:
    from hellora.bench.report import format_table
    from hellora.bench.setups import SETUPS, check_setup
    from hellora.bench.throughput import BenchConfig, run_bench
    from hellora.utils.io import atomic_write_json

    overrides = key_values(args.override or [], "--override")
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
    print_json(result) if args.json else print(format_table(result))


def add_bench(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("bench", help="step time and peak memory: frozen / hellora / lora / PEFT, side by side")
    p.add_argument("--model", default="olmoe-1b-7b", help="preset or config folder (weights are random)")
    p.add_argument("--layers", type=int, default=4, help="decoder layers to keep (0: all)")
    p.add_argument("--batch", "--batch-size", dest="batch", type=int, default=8, help="sequences per step")
    p.add_argument("--seq", type=int, default=512, help="tokens per sequence")
    p.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"],
                   help="weights dtype of the benchmarked layers")
    p.add_argument("--k", type=int, default=None, help="hot experts per layer (default: the router's top-k)")
    p.add_argument("--rank", type=int, default=32)
    p.add_argument("--hot-share", type=float, default=0.5, help="share of assignments routed to the k hot experts "
                   "(0: leave the random router alone)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first")
    p.add_argument("--steps", type=int, default=10, help="timed steps")
    p.add_argument("--setups", default=None, help="comma-separated subset of frozen,hellora,lora,peft-lora,peft-attn; "
                   "hellora and lora take suffixes to compare paths: a kernel @reference, @torch, @loop or @triton, and "
                   "@unfused (no shared q/k/v A product), e.g. hellora@reference@unfused (default: all of them)")
    p.add_argument("--interleave", action="store_true", help="time the setups round-robin, each on its own model "
                   "copy, so a shared machine's changing load hits them alike")
    p.add_argument("--override", action="append", help="model config field, e.g. hidden_size=256 (repeatable; default: the preset's own)")
    p.add_argument("--out", help="write the JSON result here (default: print only)")
    flags(p, "json")
    p.set_defaults(func=cmd_bench)


def cmd_doctor(args: argparse.Namespace) -> None:
    from hellora.bench.doctor import doctor, format_doctor

    report = doctor(bench=not args.no_bench)
    print_json(report) if args.json else print(format_doctor(report))


def add_doctor(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("doctor", help="versions, device, which expert path runs and why, the Triton self-check, "
                       "a few-second micro-bench")
    p.add_argument("--no-bench", action="store_true", help="skip the micro-bench")
    flags(p, "json")
    p.set_defaults(func=cmd_doctor)
