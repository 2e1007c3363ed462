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
import sys

from hellora import __version__
from hellora.cli import cost_commands, evaluate, run_commands
from hellora.cli.support import Parser, fill_help, run


def build_parser() -> argparse.ArgumentParser:

    parser = Parser(prog="hellora", description="Hot-expert LoRA for Mixture-of-Experts models")
    parser.add_argument("--version", action="version", version=f"hellora {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--debug", action="store_true", help="show the full traceback of any error")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)

    cost_commands.add_params(sub)
    run_commands.add_demo(sub)
    cost_commands.add_bench(sub)
    cost_commands.add_doctor(sub)
    run_commands.add_sweep(sub)
    run_commands.add_proxy(sub)
    run_commands.add_report(sub)
    run_commands.add_train(sub)
    evaluate.add_eval(sub)
    cost_commands.add_flops(sub)
    run_commands.add_profile(sub)
    run_commands.add_select(sub)
    run_commands.add_compare(sub)
    evaluate.add_export(sub)
    fill_help(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse `argv`, run the command; errors become one line on stderr and an exit status (see `hellora.cli.support.run`)."""
    return run(build_parser(), sys.argv[1:] if argv is None else argv)
