"""Commands that make or read runs: `demo`, `train`, `sweep`, `proxy`, `profile`, `select`, `compare`, `report`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from hellora.cli.support import (REFERENCE_HELP, STRATEGY_HELP, check_reference_flag, flags, key_values, need_file,
                                 print_json, refuse_existing, replacing_run)
from hellora.placement import PLACEMENT_FORMAT, STRATEGIES
from hellora.utils.errors import HelloraError
from hellora.utils.ownership import OutputKind

PROFILE_FORMAT = "hellora.profile/1"  # hellora.profiling.profile.FORMAT, without importing torch for --help


def cmd_demo(args: argparse.Namespace) -> None:
    import torch

    from hellora.demo.run import DemoConfig, run_demo

    refuse_existing(args.out, args.overwrite, kind=OutputKind.DEMO)
    if args.threads:
        torch.set_num_threads(args.threads)
    run_demo(args.out, DemoConfig(seed=args.seed), progress=True)


def add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the whole method on a tiny MoE trained in-process on CPU (no network)")
    flags(p, "out", out_help="folder for demo.json, expert_heatmap.png, base-model/ and data/")
    p.set_defaults(out="hellora-demo")
    p.add_argument("--seed", type=int, default=0, help="seed of data, model and training")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    p.set_defaults(func=cmd_demo)


def cmd_sweep(args: argparse.Namespace) -> None:
    from hellora.sweep import run_sweep

    done = run_sweep(args.sweep, args.overrides, dry_run=args.dry_run, progress=not args.no_progress)
    if not args.dry_run:
        print(f"{len(done)} runs finished")


def add_sweep(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="run a paper table: base recipe x override sets x seeds (recipes/paper/)")
    p.add_argument("sweep", help="sweep YAML (see recipes/paper/)")
    p.add_argument("overrides", nargs="*", default=[], help="key=value overrides applied to every run")
    p.add_argument("--dry-run", action="store_true", help="print the runs, train nothing")
    flags(p, "progress")
    p.set_defaults(func=cmd_sweep)


def cmd_proxy(args: argparse.Namespace) -> int:
    import shlex
    import sys

    from hellora.study.proxy import StudyConfig, run_study

    config, words = args.config, list(args.overrides)
    if words and "=" not in words[0]:  # `hellora proxy recipes/proxy/cpu.yaml --out DIR`
        if config:
            raise HelloraError(f"proxy: a config given twice ({words[0]} and --config {config})")
        config = words.pop(0)
    overrides = key_values(words, "override")
    command = "hellora " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["proxy"] else None
    study = run_study(StudyConfig.from_yaml(config, overrides), args.out, progress=not args.no_progress,
                      command=command)
    for target, block in study["targets"].items():
        print(f"target {target}: bases kept {len(block['bases_kept'])}, excluded {len(block['bases_excluded'])}")
        for arm, row in block["arms"].items():
            test = row["test"]
            ci = "-" if not test["ci95"] else f"[{test['ci95'][0]:6.2f}, {test['ci95'][1]:6.2f}]"
            mean = "-" if test["mean"] is None else f"{test['mean']:6.2f}"
            lrs = ", ".join(f"{c['lr']:g}" + (" (edge)" if c["edge"] else "") for c in row["lr_choices"])
            print(f"  {arm:<14} test exact match {mean} {ci} bases={test['n_bases']:<3} lr {lrs}")
    for r in study["primary"]:
        ci = "-" if not r.get("ci95") else f"[{r['ci95'][0]:+6.2f}, {r['ci95'][1]:+6.2f}]"
        diff = "-" if r.get("diff") is None else f"{r['diff']:+6.2f}"
        p = "-" if r.get("p_holm") is None else f"{r['p_holm']:.4f}"
        print(f"  [primary] {r['contrast']:<44} diff {diff} {ci} bases={r['n_bases']} Holm p={p}  {r['verdict']}")
    print(f"study.json: {args.out}/study.json")
    nothing = nothing_analysed(study)
    if nothing:
        print(f"hellora proxy: {nothing}", file=sys.stderr)
        return 3
    return 0


def nothing_analysed(study: dict) -> str | None:
    """Why a finished study has no result (every base of every target excluded before fine-tuning), or None."""
    blocks = study["targets"]
    if any(block["bases_kept"] for block in blocks.values()):
        return None
    excluded = "; ".join(f"{t}: {len(b['bases_excluded'])} excluded" for t, b in blocks.items())
    return (f"the exclusion rule kept no base for any target ({excluded}): nothing was analysed; the bases' own "
            f"scores are in study.json (choose a target they do not know yet, e.g. target_pretrain: 0)")


def add_proxy(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("proxy", help="the proxy study: pretrain small MoEs on skills, compare adapter arms over bases")
    p.add_argument("overrides", nargs="*", help="[CONFIG.yaml] key=value overrides of the study config")
    p.add_argument("--config", default=None, help="study YAML (recipes/proxy/cpu.yaml)")
    p.add_argument("--out", default="runs/proxy")
    flags(p, "progress")
    p.set_defaults(func=cmd_proxy)


def cmd_report(args: argparse.Namespace) -> int:
    import sys

    from hellora.report.tables import make_report

    refuse_existing(args.out, args.overwrite, kind=OutputKind.REPORT)
    report = make_report(args.runs, args.out, include_unfinished=args.include_unfinished)
    print(report.path.read_text() if not args.quiet else report.path)
    for line in report.left_out + report.warnings:
        print(f"hellora report: warning: {line}", file=sys.stderr)
    if report.left_out and not args.include_unfinished:
        print(f"hellora report: {len(report.left_out)} run(s) did not finish and were left out; exit status 3 "
              f"(--include-unfinished to report them)", file=sys.stderr)
        return 3
    return 0


def add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="markdown tables and PNG figures from saved run folders")
    p.add_argument("runs", nargs="+", help="run folders written by hellora train (or a study)")
    flags(p, "out", out_help="folder for report.md and the figures")
    p.set_defaults(out="report")
    p.add_argument("--quiet", action="store_true", help="print only the report's path")
    p.add_argument("--include-unfinished", action="store_true", help="report runs that did not finish (interrupted, "
                   "failed) in rows of their own; without it they are left out with a warning and exit status 3")
    p.set_defaults(func=cmd_report)


def run_summary(result: dict, output_dir: str) -> str:
    """The last line of `hellora train`: status, steps, loss to 4 significant digits, each eval headline score,
    throughput and where the adapter (or full model) is."""
    train = result["steps"].get("train", {})
    loss = train.get("final_loss")
    parts = [f"{result.get('status', 'finished')}: {output_dir}", f"steps={train.get('steps')}",
             f"final loss={loss:#.4g}" if isinstance(loss, (int, float)) else "final loss=-"]
    for task, headline in (result["steps"].get("eval") or {}).items():
        if isinstance(headline, dict):
            parts += [f"{task} {metric}={100 * value:.2f}%" for metric, value in headline.items()
                      if isinstance(value, (int, float))]
    if train.get("samples_per_s"):
        parts.append(f"samples/s={train['samples_per_s']:.4g}")
    saved = Path(output_dir) / ("adapter" if (Path(output_dir) / "adapter").is_dir() else "model")
    parts.append(f"{saved.name}={saved}")
    return "  ".join(parts)


def cmd_train(args: argparse.Namespace) -> int:
    import sys

    from hellora.config import load_run_config

    config = load_run_config(args.recipe, args.overrides)
    config.resolved()  # every default filled and checked before any work, and before torch is imported (< 1 s)
    from hellora.train.pipeline import run_training

    with replacing_run(Path(config.output_dir), args.overwrite):
        result = run_training(config, progress=not args.no_progress,
                              restart_from_checkpoint=args.restart_from_checkpoint)
    if result.get("status") != "finished":  # degenerate or diverged: trained to the end, but learned nothing useful
        print(f"hellora train: warning: the run is {result.get('status')}: {result.get('reason')}", file=sys.stderr)
    print(run_summary(result, config.output_dir))
    return 0 if result.get("status") == "finished" else 3


def add_train(sub: argparse._SubParsersAction) -> None:
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


def cmd_profile(args: argparse.Namespace) -> None:
    import os

    from hellora.config import load_run_config

    config = load_run_config(args.recipe, args.overrides)  # checked before torch is imported
    refuse_existing(args.out, args.overwrite, formats=(PROFILE_FORMAT,))
    from hellora.profiling.stage import profile_only

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


def add_profile(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("profile", help="forward-only routing counts of a recipe's model on a fraction of its data")
    p.add_argument("recipe", help="YAML recipe (model, data, profile.fraction / seed)")
    p.add_argument("overrides", nargs="*", default=[], help="section.key=value overrides")
    flags(p, "out", "progress", out_help="profile.json to write", out_required=True)
    p.set_defaults(func=cmd_profile)


def cmd_select(args: argparse.Namespace) -> None:
    from hellora.profiling.profile import ExpertProfile

    need_file(args.profile, "--profile")
    check_reference_flag(args.strategy, args.reference)
    refuse_existing(args.out, args.overwrite, formats=(PLACEMENT_FORMAT,))
    reference = ExpertProfile.load(args.reference) if args.reference else None
    placement = ExpertProfile.load(args.profile).select(args.strategy, args.k, seed=args.seed, p=args.p,
                                                        reference=reference)
    placement.save(args.out)
    sizes = sorted({len(v) for v in placement.experts.values()})
    print(f"{args.out}: {placement.strategy} placement, {placement.total_experts} experts over "
          f"{len(placement.experts)} layers (per layer: {sizes})")


def add_select(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("select", help="choose hot experts from a profile")
    p.add_argument("--profile", required=True, help="profile.json (from hellora profile or a run folder)")
    p.add_argument("--strategy", default="layer", choices=STRATEGIES, help=STRATEGY_HELP)
    p.add_argument("--k", type=int, default=None, help="experts per layer (default: the router's top-k)")
    p.add_argument("--p", type=float, default=0.5, help="mass to reach for --strategy coverage")
    p.add_argument("--seed", type=int, default=0, help="seed of --strategy random")
    p.add_argument("--reference", default=None, help=REFERENCE_HELP)
    flags(p, "out", out_help="placement.json to write (train on it with selection.path=FILE)", out_required=True)
    p.set_defaults(func=cmd_select)


def cmd_compare(args: argparse.Namespace) -> None:
    from hellora.profiling.profile import ExpertProfile, compare_profiles

    need_file(args.profile, "profile")
    need_file(args.reference, "reference")
    result = compare_profiles(ExpertProfile.load(args.profile), ExpertProfile.load(args.reference), k=args.k)
    if args.json:
        print_json(result)
    else:
        print(f"k={result['k']}  Jaccard {result['jaccard']:.3f}  coverage {100 * result['coverage']:.1f}%")


def add_compare(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("compare", help="Jaccard overlap and coverage of two profiles' hot sets")
    p.add_argument("profile", help="profile.json to compare")
    p.add_argument("reference", help="profile.json to compare against (e.g. the full-data profile)")
    p.add_argument("--k", type=int, default=None, help="hot experts per layer (default: the router's top-k)")
    flags(p, "json")
    p.set_defaults(func=cmd_compare)
