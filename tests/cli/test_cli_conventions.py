"""Command-line conventions: --version, help and defaults for every option, one handler per log message, a shared
list of selection strategies, and commands that read JSON only start without importing torch."""

import argparse
import json
import subprocess
import sys

from hellora import __version__
from hellora.cli import build_parser, main
from hellora.placement import STRATEGIES
from hellora.choices import Strategy


def _subparsers():
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return action.choices


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"hellora {__version__}"


def test_every_option_of_every_command_has_help_and_shows_its_default(capsys):
    for name, sub in _subparsers().items():
        for action in sub._actions:
            assert (action.help or "").strip(), f"hellora {name} {action.option_strings or action.dest}: no help"
    assert main(["select", "--help"]) == 0
    text = capsys.readouterr().out
    assert "(default: layer)" in text and "(default: 0.5)" in text


def test_select_and_flops_share_the_strategy_list():
    subs = _subparsers()
    for name in ("select", "flops"):
        strategy = next(a for a in subs[name]._actions if "--strategy" in a.option_strings)
        assert tuple(strategy.choices) == STRATEGIES  # the selectable ones: `manual` marks hand-made placements
    assert set(STRATEGIES) == set(Strategy.values()) - {"manual"}


def test_proxy_takes_its_config_as_a_positional_like_train(tmp_path, capsys):
    assert main(["proxy", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml" in capsys.readouterr().err


def test_library_log_messages_are_printed_once_and_font_cache_chatter_not_at_all():
    code = ("import logging\n"
            "from hellora.cli.support import setup_logging\n"
            "setup_logging(False)\n"
            "from huggingface_hub.utils import logging as hub_logging\n"
            "hub_logging.get_logger('huggingface_hub.http').warning('Retrying in 1s')\n"
            "logging.getLogger('matplotlib.font_manager').info('generated new fontManager')\n"
            "logging.getLogger('hellora.demo').info('hellora says')\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.stderr.count("Retrying in 1s") == 1, done.stderr
    assert "fontManager" not in done.stderr and "hellora says" in done.stderr


def test_select_and_compare_do_not_import_torch(tmp_path):
    from hellora.profiling.profile import ExpertProfile

    counts = [[5, 1, 0, 3], [0, 2, 7, 1]]
    ExpertProfile(layers=[0, 1], counts=counts, mass=[[float(c) for c in row] for row in counts], tokens=[9, 10],
                  num_experts=4, top_k=2).save(tmp_path / "p.json")
    code = ("import sys\nfrom hellora.cli import main\n"
            f"assert main(['select', '--profile', {str(tmp_path / 'p.json')!r}, '--out', "
            f"{str(tmp_path / 'pl.json')!r}]) == 0\n"
            f"assert main(['compare', {str(tmp_path / 'p.json')!r}, {str(tmp_path / 'p.json')!r}, '--json']) == 0\n"
            "print('torch' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"
    assert json.loads((tmp_path / "pl.json").read_text())["experts"] == {"0": [0, 3], "1": [1, 2]}  # sorted ids
