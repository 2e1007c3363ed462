"""Commands that use a trained adapter: `hellora eval` (benchmarks under a named protocol, or HumanEval
samples scored in the sandbox) and `hellora export` (stock PEFT folder or merged checkpoint).
"""

from __future__ import annotations

import argparse
import logging

from hellora.cli.support import COMMON_HELP, flags, print_json
from hellora.utils.errors import HelloraError
from hellora.choices import EvalTask, ExportFormat, GenerationBackend

log = logging.getLogger("hellora")


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


def _vllm_engine(args):
    """The vLLM engine settings of `hellora eval --backend vllm`, checked before anything is generated."""
    from pathlib import Path

    from hellora.eval.vllm_backend import VllmEngineSettings, engine_dtype

    if not Path(args.model).is_dir():
        raise HelloraError(f"--model {args.model}: --backend vllm needs a merged checkpoint folder "
                           f"(hellora export --format merged)")
    if args.tokenizer is not None and not Path(args.tokenizer).is_dir():
        raise HelloraError(f"--tokenizer {args.tokenizer}: --backend vllm needs a tokenizer folder")
    dtype = engine_dtype(args.dtype, args.model)  # "auto": the checkpoint's own, as transformers reads it
    return VllmEngineSettings(args.model, dtype=dtype, tokenizer=args.tokenizer,
                              trust_remote_code=args.trust_remote_code,
                              progress=not (args.json or args.no_progress))


def default_eval_out(model: str, adapter: str | None) -> str:
    """--out when not given: the adapter's run folder's eval/ (beside adapter/), else eval-<model folder name>."""
    from pathlib import Path

    if adapter:
        return str(Path(adapter).resolve().parent / "eval")
    return f"eval-{Path(model.rstrip('/')).name or 'model'}"


def cmd_eval(args: argparse.Namespace) -> None:
    from hellora.config import EvalConfig
    from hellora.eval.protocols import HEADLINE_PROTOCOL
    from hellora.eval.run import (EvalOutput, EvalScoring, check_judge, check_outputs, check_tasks, cross_task,
                                  evaluate_tasks, resolve_protocol)

    if args.k is not None:
        log.warning("eval --k is deprecated for pass@k (--k means hot experts elsewhere); use --pass-k")
    ks = _int_list(args.pass_k or args.k or "1,5,10", "--pass-k")
    if args.mode == "humaneval" and args.samples:  # score completions made anywhere
        from hellora.eval.humaneval import evaluate_humaneval_samples

        if not args.problems:
            raise HelloraError("--problems: path to HumanEval.jsonl.gz is required")
        protocol = resolve_protocol("humaneval", args.protocol)
        result = evaluate_humaneval_samples(args.samples, args.problems, ks=ks, protocol=protocol,
                                            progress=not (args.json or args.no_progress), overwrite=args.overwrite)
        summary = {k: v for k, v in result.items() if k != "per_task"}
        print_json(summary) if args.json else print({k: v for k, v in summary.items()
                                                     if k.startswith("pass@") or k in ("suspect_passes", "protocol")})
        return
    if args.model is None and args.adapter:  # the base model the adapter's run recorded
        from hellora.adapters.export import recorded_model
        from hellora.adapters.io import read_adapter_record

        args.model = recorded_model(read_adapter_record(args.adapter))["name"]  # its run's model, or base_model=
    if not args.task or not args.model:
        raise HelloraError("give --task and --model (or an --adapter that records its model; or: hellora eval "
                           "humaneval --samples FILE --problems FILE)")
    tasks = [t.strip() for t in args.task.split(",")]
    data = _data_paths(args.data, tasks)
    protocols = list(check_tasks(data, args.protocol, max_new_tokens=args.max_new_tokens,  # before any work
                                 num_samples=args.num_samples).values())
    for protocol in protocols:
        check_judge(protocol, None)
    try:  # --max-new-tokens / --num-samples 0 mean the protocol's, as they always did
        eval_config = EvalConfig(tasks=[EvalTask.parse(t, "eval.tasks") for t in data], data={t: path for t, path in data.items() if path is not None},
                                 limit=args.limit, batch_size=args.batch_size,
                                 max_new_tokens=args.max_new_tokens or None, num_samples=args.num_samples or None,
                                 protocol=args.protocol or HEADLINE_PROTOCOL)
    except HelloraError as err:
        field, _, why = str(err).partition(": ")
        raise HelloraError(f"--{field.removeprefix('eval.').replace('_', '-')}: {why}") from None
    backend = GenerationBackend.parse(args.backend, "--backend")
    if backend is GenerationBackend.VLLM and args.adapter:
        raise HelloraError("--backend vllm runs a merged checkpoint: export one with `hellora export --format merged` "
                           "and pass it as --model, without --adapter")
    if args.cross_task and not args.adapter:
        raise HelloraError("--cross-task compares before/after an adapter: give --adapter")
    out = args.out or default_eval_out(args.model, args.adapter)
    check_outputs(out, list(data), ("_before", "_after") if args.cross_task else ("",), args.overwrite)
    if args.dtype is None:  # the protocol's dtype when all tasks agree on one
        dtypes = {p.dtype for p in protocols}
        args.dtype = dtypes.pop() if len(dtypes) == 1 else "auto"
    vllm_engine = None
    if backend is GenerationBackend.VLLM:  # vLLM loads the checkpoint itself: no transformers copy beside it
        vllm_engine = _vllm_engine(args)
        model, tokenizer = None, None
    else:
        model, tokenizer = _model_and_tokenizer(args)
    progress = not (args.json or args.no_progress)
    if args.cross_task:
        assert model is not None and tokenizer is not None  # --cross-task needs --adapter, which vLLM refuses
        matrix = cross_task(model, tokenizer, eval_config, out_dir=out, scoring=EvalScoring(ks), progress=progress,
                            overwrite=args.overwrite)
        print_json(matrix) if args.json else [print(t, v) for t, v in matrix.items()]
        return
    output = EvalOutput(out, overwrite=args.overwrite, sources={"model": args.model, "adapter": args.adapter})
    reports = evaluate_tasks(model, tokenizer, eval_config, output, scoring=EvalScoring(ks), progress=progress,
                             vllm_engine=vllm_engine)
    for report in reports:
        print_json(report) if args.json else print(f"{report['task']} [{report['protocol']['name']}]: "
                                                    f"{report['headline']}  ({out}/eval_{report['task']}.json"
                                                    f"{'' if args.out else ', the default --out'})")


def add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate on GSM8K / HumanEval / HEx-PHI / AdvBench / the demo's "
                       "skills, or score HumanEval samples")
    p.add_argument("mode", nargs="?", choices=["humaneval"], help="`humaneval --samples FILE`: score completions only")
    p.add_argument("--samples", help="JSONL of {task_id, completion} to score (with mode humaneval)")
    p.add_argument("--problems", help="HumanEval.jsonl.gz")
    p.add_argument("--pass-k", default=None, help="pass@k values for HumanEval (default 1,5,10)")
    p.add_argument("--k", default=None, help=argparse.SUPPRESS)  # deprecated alias of --pass-k
    p.add_argument("--task", help="gsm8k, humaneval, hexphi, advbench, or skill (the demo's skills, "
                   "hellora-demo/data/<skill>-test.jsonl); comma-separated for several")
    p.add_argument("--protocol", default=None, help="evaluation protocol (default lori, the paper's; others: "
                   "gsm8k robust, lm-eval-strict, lm-eval-flexible; humaneval human-eval; safety keywords; skill exact, "
                   "its only one). See docs/evaluation.md")
    p.add_argument("--model", help="base model (folder or hub id), or a merged checkpoint (default with --adapter: "
                   "the model its run recorded)")
    p.add_argument("--adapter", help="hellora adapter folder to apply")
    p.add_argument("--tokenizer", help="tokenizer (default: the model's; 'tiny' for hellora's character one)")
    p.add_argument("--data", action="append", help="benchmark file (or task=PATH per task)")
    p.add_argument("--out", help="output folder (default: with --adapter, eval/ beside the adapter folder, as a run "
                   "keeps it; else eval-NAME in the current folder, NAME the model folder's name)")
    p.add_argument("--limit", type=int, help="evaluate only the first N items (default: all)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int)
    p.add_argument("--num-samples", type=int, help="samples per prompt (HumanEval default 20)")
    p.add_argument("--backend", choices=GenerationBackend.values(), default=GenerationBackend.HF.value,
                   help="vllm: --model must be a merged folder, run in the protocol's dtype (docs/serving.md)")
    p.add_argument("--cross-task", action="store_true", help="each task before/after the adapter (Appendix G)")
    p.add_argument("--overwrite", action="store_true", help="replace existing eval files in --out (with --samples: its _results.jsonl)")
    p.add_argument("--dtype", default=None, help="weights dtype (default: the protocol's; lori: float32)")
    flags(p, "json", "progress", "remote")
    p.set_defaults(func=cmd_eval)


def cmd_export(args: argparse.Namespace) -> None:
    from hellora.adapters.export import export_adapter

    out = export_adapter(args.adapter, args.format, args.out, model=args.model, dtype=args.dtype,
                         trust_remote_code=args.trust_remote_code, overwrite=args.overwrite)
    print(f"wrote {args.format} export to {out}")


def add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export an adapter for stock PEFT, or merged into the base weights")
    p.add_argument("--adapter", required=True, help="adapter folder (a run's adapter/)")
    p.add_argument("--format", choices=ExportFormat.values(), required=True,
                   help="peft: a stock-PEFT adapter folder; vllm: a LoRA folder in vLLM's per-expert MoE layout "
                   "(docs/serving.md); merged: the base model with the update folded in")
    flags(p, "out", out_help="folder to write", out_required=True)
    p.add_argument("--model", default=None, help="base model (default: the one the adapter records)")
    p.add_argument("--dtype", default="auto", help=COMMON_HELP["--dtype"] + " (merged)")
    flags(p, "remote")
    p.set_defaults(func=cmd_export)
