"""--help states every option's default, offers only real choices, and params refuses a --k it would ignore."""

import argparse

from hellora.cli import build_parser, main


def _subparsers():
    parser = build_parser()
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices


def test_every_option_with_a_default_says_it_in_help():
    missing = [f"{name} {action.option_strings[-1]}" for name, sub in _subparsers().items() for action in sub._actions
               if action.option_strings and action.nargs != 0 and action.default not in (None, argparse.SUPPRESS)
               and action.help is not argparse.SUPPRESS and "default" not in (action.help or "")]
    assert missing == []


def test_the_defaults_the_issue_named_are_shown(capsys):
    for command, expected in [("demo", "seed of data, model and training (default: 0)"),
                              ("select", "seed of --strategy random (default: 0)"), ("flops", "(default: 32")]:
        assert main([command, "--help"]) == 0
        assert expected in " ".join(capsys.readouterr().out.split()), command


def test_bench_dtype_help_lists_only_its_choices(capsys):
    dtype = next(a for a in _subparsers()["bench"]._actions if "--dtype" in a.option_strings)
    assert "auto" not in dtype.help and "auto" not in dtype.choices


def test_params_refuses_k_for_methods_that_adapt_every_expert(capsys):
    assert main(["params", "--model", "olmoe-1b-7b", "--method", "lora", "--k", "8"]) == 2
    err = capsys.readouterr().err
    assert "--k 8" in err and "only to --method hellora" in err
    assert main(["params", "--model", "olmoe-1b-7b", "--method", "lora"]) == 0
    assert "experts=all (64)" in capsys.readouterr().out
    assert main(["params", "--model", "olmoe-1b-7b", "--method", "hellora", "--k", "8"]) == 0
    assert "k=8" in capsys.readouterr().out
