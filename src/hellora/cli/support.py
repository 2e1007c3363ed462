"""Pieces of the `hellora` command line shared by every subcommand: parser, flag groups, output policy, logging.

The overwrite policy lives here: `refuse_existing` refuses an existing output before any work unless
`--overwrite`, and even then unless hellora made it (`hellora.utils.ownership`); `replacing_run` is what
`train --overwrite` does with an existing run folder, which it replaces only when it is a run hellora made.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, NoReturn

from hellora.placement import NEEDS_REFERENCE, needs_reference
from hellora.utils.errors import HelloraError
from hellora.utils.io import read_json
from hellora.utils.ownership import OutputKind, check_replaceable, why_not_ours
from hellora.utils.quiet import quiet_import_chatter

log = logging.getLogger("hellora")

STRATEGY_HELP = ("layer: top-k per layer (the paper's); model: top-k*L over the whole model; cold: bottom-k; "
                 "random: k at random; coverage: fewest experts reaching mass p per layer; entropy: top-k by "
                 "routing entropy; cold-entropy: bottom-k by routing entropy; retention: top-k by the target's "
                 "routing share minus --reference's (experts specific to the target); all: every expert; first-k: "
                 "experts 0..k-1 (a count-only stand-in)")
REFERENCE_HELP = ("profile.json of the data whose skills should be kept (other tasks' routing), for --strategy "
                  "retention; same model as --profile")


def check_reference_flag(strategy: str, reference: str | None) -> None:
    """--reference is given exactly when the strategy reads it, and names a file (one error before any work)."""
    if needs_reference(strategy) and not reference:
        raise HelloraError(f"--strategy {strategy} ranks experts against a reference profile: pass --reference "
                           f"PATH (profile.json of the data whose skills to keep)")
    if reference and not needs_reference(strategy):
        raise HelloraError(f"--reference: only --strategy {', '.join(sorted(NEEDS_REFERENCE))} reads it, not "
                           f"{strategy!r}")
    if reference:
        need_file(reference, "--reference")

# Help texts of flags that several commands share, filled in wherever a parser left them without one.
COMMON_HELP = {
    "--json": "print the result as JSON",
    "--trust-remote-code": "allow the model's own Python code from its folder or hub repository",
    "--dtype": "weights dtype: auto, bfloat16, float16 or float32",
    "--overwrite": "replace an existing output instead of refusing",
    "--no-progress": "no progress bars",
    "--batch-size": "prompts per generation batch",
    "--max-new-tokens": "tokens generated per prompt (default: the task's)",
    "--k": "hot experts per layer (default: the router's top-k)",
    "--rank": "LoRA rank",
    "--model": "preset, local folder or hub id",
    "--out": "where to write",
    "--seed": "random seed",
}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Defaults in --help, except where the help text already says the default or there is none to show."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """argparse with one-line errors (`hellora train: error: ...; see hellora train --help`) and defaults in help."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def fill_help(parser: argparse.ArgumentParser) -> None:
    """Give the shared flags their help text where a parser left it out (so --help also shows their default)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                fill_help(sub)
        else:
            if action.help is None:
                flag = next((o for o in action.option_strings if o.startswith("--")), None)
                action.help = COMMON_HELP.get(flag) if flag else None
            if shows_no_default(action):
                action.help = (action.help or "") + " (default: %(default)s)"


def shows_no_default(action: argparse.Action) -> bool:
    """An option with a value default whose help does not say it (so --help can print it)."""
    return (bool(action.option_strings) and action.nargs != 0 and action.default not in (None, argparse.SUPPRESS)
            and action.help is not argparse.SUPPRESS and "default" not in (action.help or ""))


def flags(p: argparse.ArgumentParser, *groups: str, out_help: str | None = None, out_required: bool = False) -> None:
    """Flag groups shared by several commands, declared once: out (+ --overwrite), json, progress, remote-code."""
    if "out" in groups:
        default: dict[str, Any] = {} if out_required else {"default": None}
        p.add_argument("--out", required=out_required, help=out_help or COMMON_HELP["--out"], **default)
        p.add_argument("--overwrite", action="store_true", help=COMMON_HELP["--overwrite"])
    if "json" in groups:
        p.add_argument("--json", action="store_true", help=COMMON_HELP["--json"])
    if "progress" in groups:
        p.add_argument("--no-progress", action="store_true", help=COMMON_HELP["--no-progress"])
    if "remote" in groups:
        p.add_argument("--trust-remote-code", action="store_true", help=COMMON_HELP["--trust-remote-code"])


def refuse_existing(path: str | Path, overwrite: bool, flag: str = "--out", *, kind: OutputKind | None = None,
                    formats: tuple[str, ...] = ()) -> None:
    """The overwrite policy: an existing output (a file, or a non-empty folder) is refused before any work, unless
    `overwrite` and hellora made it (a folder of `kind`, or a JSON file of one of `formats`)."""
    check_replaceable(path, overwrite, flag=flag, kind=kind, formats=formats)


def need_file(path: str | Path, flag: str) -> None:
    if not Path(path).is_file():
        what = "is a folder, not a file" if Path(path).is_dir() else "not found"
        raise HelloraError(f"{flag} {path}: {what}")


class replacing_run:
    """`train --overwrite`: an existing run folder is moved aside, and deleted only once the new run finished;
    if the new run fails before writing its folder, the old one is put back."""

    def __init__(self, run: Path, overwrite: bool) -> None:
        self.run, self.overwrite, self.aside = run, overwrite, None

    def __enter__(self):
        if not self.overwrite:
            status = self.run / "run.json"
            record = read_json(status, "run status") if status.is_file() else None
            if isinstance(record, dict) and record.get("status") == "finished":
                raise HelloraError(f"output_dir {self.run} already holds a finished run; choose another output_dir, "
                                   f"or pass --overwrite to start over (nothing was changed)")
            return self
        if self.run.is_symlink():
            raise HelloraError(f"output_dir {self.run} is a symbolic link; --overwrite replaces only run folders "
                               f"hellora made: give the real path (nothing was changed)")
        if not (self.run.is_dir() and any(self.run.iterdir())):
            return self
        why = why_not_ours(self.run, OutputKind.RUN)
        if why:
            raise HelloraError(f"output_dir {self.run}: --overwrite replaces only run folders hellora made, and {why}; "
                               f"choose another output_dir or remove it yourself (nothing was changed)")
        import os

        self.aside = self.run.with_name(f".{self.run.name}.replaced.{os.getpid()}")
        self.run.rename(self.aside)
        return self

    def __exit__(self, kind, value, tb):
        import shutil

        if self.aside is None:
            return False
        if kind is None:
            shutil.rmtree(self.aside, ignore_errors=True)
        elif not self.run.exists():
            self.aside.rename(self.run)  # nothing new was written: the old run is back as it was
        else:
            log.warning("the replaced run is kept in %s", self.aside)
        return False


def setup_logging(verbose: bool) -> None:
    """hellora's messages at INFO (DEBUG with -v) through one handler of its own. The root logger gets none, so a
    library that brings its own handler (huggingface_hub's retry messages, transformers) prints each message once,
    and libraries without one print only warnings (no matplotlib font-cache chatter)."""
    logger = logging.getLogger("hellora")
    logger.handlers = [h for h in logger.handlers if not getattr(h, "_hellora_cli", False)]
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler._hellora_cli = True  # type: ignore[attr-defined]  # marks the handler as ours (see above)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    quiet_import_chatter()


def resume_hint(args: argparse.Namespace) -> str:
    if args.command in ("train", "sweep"):
        return "; rerun the same command to resume from the last checkpoint, or add --overwrite to start over"
    return "; nothing half-written was left (outputs are written whole)"




def parse(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """argparse, plus `key=value` overrides after options (`hellora sweep S.yaml --dry-run a.b=1`, which a
    positional `overrides` alone rejects) and `hellora proxy STUDY.yaml` (like `hellora train RECIPE.yaml`)."""
    args, extra = parser.parse_known_args(argv)
    if extra:
        if hasattr(args, "overrides") and all("=" in e and not e.startswith("-") for e in extra):
            args.overrides = [*args.overrides, *extra]
        else:
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.command == "proxy" and args.overrides and "=" not in args.overrides[0]:
        if args.config:  # `hellora proxy STUDY.yaml`, like `hellora train RECIPE.yaml`
            parser.error(f"proxy: give the study config once (positional {args.overrides[0]} or --config)")
        args.config = args.overrides.pop(0)
    return args


def run(parser: argparse.ArgumentParser, argv: list[str]) -> int:
    """Parse and run one command. A user error (`HelloraError`, a missing file, a bad flag) prints one line and
    returns 2; Ctrl-C returns 130 with how to resume; anything else is a bug: one line and status 1. `--debug`
    (anywhere on the line) re-raises instead, with the traceback."""
    argv = list(argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    try:  # argparse exits on a bad flag or after --help: return its status instead (main is also called in-process)
        args = parse(parser, argv)
    except SystemExit as e:
        return e.code if isinstance(e.code, int) else 2
    args.debug = debug
    setup_logging(args.verbose)
    from hellora.utils.progress import quiet_library_progress

    quiet_library_progress(not getattr(args, "no_progress", False))  # no "Loading weights" bars in logs
    where = f"hellora {args.command}"
    try:
        code = args.func(args)  # a command may return a non-zero status after printing its result
    except HelloraError as e:
        if debug:
            raise
        print(f"{where}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{where}: interrupted{resume_hint(args)}", file=sys.stderr)
        return 130
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError) as e:
        if debug:
            raise
        print(f"{where}: error: {e.strerror or e}: {e.filename}", file=sys.stderr)
        return 2
    except Exception as e:  # a bug, not a user error: one line, the traceback on request
        if debug:
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        print(f"{where}: unexpected error: {type(e).__name__}: {first}{resume_hint(args)} "
              f"(rerun with --debug for the traceback)", file=sys.stderr)
        return 1
    return code if isinstance(code, int) else 0

def print_json(obj: object) -> None:
    print(json.dumps(obj, indent=2))


def key_values(items: list[str], what: str) -> dict[str, Any]:
    """`key=value` strings -> dict with YAML-typed values (parsed as recipe overrides are)."""
    from hellora.utils.yaml_values import split_override

    values = {}
    for item in items:
        parts, value = split_override(item, what)
        values[".".join(parts)] = value
    return values
