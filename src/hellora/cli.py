"""The `hellora` command line: parse, call one library function, print or save.

    hellora train   recipes/olmoe/gsm8k-hellora.yaml train.epochs=1
    hellora params  --model olmoe-1b-7b --method hellora --k 8 --json
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

from hellora.utils.errors import HelloraError

log = logging.getLogger("hellora")


def _print_json(obj) -> None:
    print(json.dumps(obj, indent=2))


def cmd_params(args) -> None:
    from hellora.accounting import parameter_report

    report = parameter_report(args.model, args.method, k=args.k, r=args.rank, alpha=args.alpha,
                              placement=args.placement, trust_remote_code=args.trust_remote_code)
    if args.json:
        _print_json({"trainable": report["trainable"], "total": report["total"],
                     "trainable_pct": round(report["trainable_pct"], 4), **{k: report[k] for k in
                     ("model", "method", "k", "r", "placement", "num_experts", "top_k", "moe_layers", "by_role")}})
        return
    print(f"{report['model']}  method={report['method']}  k={report['k']}  r={report['r']}  "
          f"placement={report['placement']}")
    print(f"trainable {report['trainable']:,} / total {report['total']:,} = {report['trainable_pct']:.3f}%")
    for role, n in report["by_role"].items():
        print(f"  {role:<10} {n:>14,}")


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


def cmd_train(args) -> None:
    from hellora.config import load_run_config
    from hellora.train.pipeline import run_training

    config = load_run_config(args.recipe, args.overrides)
    result = run_training(config, progress=not args.no_progress)
    train = result["steps"].get("train", {})
    print(f"finished: {config.output_dir}  steps={train.get('steps')}  final loss={train.get('final_loss')}  "
          f"samples/s={train.get('samples_per_s')}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hellora", description="Hot-expert LoRA for Mixture-of-Experts models")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("params", help="trainable / total parameters of a method on a model (offline)")
    p.add_argument("--model", required=True, help="preset (olmoe-1b-7b, mixtral-8x7b, deepseek-moe-16b, "
                   "qwen3-30b-a3b), local folder or hub id")
    p.add_argument("--method", choices=["lora", "hellora"], default="hellora")
    p.add_argument("--k", type=int, default=None, help="hot experts per layer (default: the router's top-k)")
    p.add_argument("--rank", type=int, default=32)
    p.add_argument("--alpha", type=float, default=64.0)
    p.add_argument("--placement", choices=["pure", "gate", "all"], default="all")
    p.add_argument("--trust-remote-code", action="store_true")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_params)

    p = sub.add_parser("train", help="profile -> select -> attach -> train -> save, from a YAML recipe")
    p.add_argument("recipe", help="YAML recipe (see recipes/)")
    p.add_argument("overrides", nargs="*", help="section.key=value overrides, e.g. train.epochs=1 adapter.r=16")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("select", help="choose hot experts from a profile")
    p.add_argument("--profile", required=True)
    p.add_argument("--strategy", default="layer",
                   choices=["layer", "model", "cold", "random", "coverage", "entropy", "all"])
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
    args = parser.parse_args(argv)
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
