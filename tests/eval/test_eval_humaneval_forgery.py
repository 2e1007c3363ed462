"""Forged HumanEval passes (issue 22): none may count as an unflagged pass; honest samples pass unflagged.

Every forgery is written so that it *would* pass if its trick worked: it returns a wrong value (or nothing) and
relies on the trick -- walking frames for a secret, scanning memory, an always-equal object, a patched builtin,
reading the tests from wherever they might be, writing fake results to every inherited fd, exit codes, fake
result lines, a patched json, a subclass of str / float. Names are split or built at run time, so no syntactic
scan sees them. They are scored through the real path (`evaluate_humaneval_samples`: self-test, sandbox, trusted
checker), with the problems file world-readable, as a downloaded benchmark usually is.
"""

import gzip
import json
import os
import shutil
import tempfile
import textwrap
from pathlib import Path

import pytest

from hellora.eval.humaneval import build_checked_sample, evaluate_humaneval_samples
from hellora.eval.sandbox import Sandbox, SandboxLimits

pytestmark = pytest.mark.skipif(os.name != "posix", reason="the sandbox refuses to run on non-POSIX systems")

ADD = {
    "task_id": "toy/add",
    "prompt": 'def add(a, b):\n    """Return a + b."""\n',
    "canonical_solution": "    return a + b\n",
    "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n",
    "entry_point": "add",
}
MEAN = {  # a check that calls a builtin (abs), as many HumanEval checks do
    "task_id": "toy/mean",
    "prompt": 'def mean(xs):\n    """The mean of xs."""\n',
    "canonical_solution": "    return sum(xs) / len(xs)\n",
    "test": "def check(candidate):\n    assert abs(candidate([1, 2, 3]) - 2.0) < 1e-6\n"
            "    assert abs(candidate([4.0]) - 4.0) < 1e-6\n",
    "entry_point": "mean",
}
SHOUT = {
    "task_id": "toy/shout",
    "prompt": 'def shout(s):\n    """s in capitals."""\n',
    "canonical_solution": "    return s.upper()\n",
    "test": "def check(candidate):\n    assert candidate('abc') == 'ABC'\n    assert candidate('x y') == 'X Y'\n",
    "entry_point": "shout",
}
PAIR = {  # a tuple result: plain data keeps tuple and list apart, as `==` does
    "task_id": "toy/pair",
    "prompt": 'def pair(x):\n    """(x, x * 2)"""\n',
    "canonical_solution": "    return (x, x * 2)\n",
    "test": "def check(candidate):\n    assert candidate(3) == (3, 6)\n    assert candidate(0) != [0, 0]\n",
    "entry_point": "pair",
}
PROBLEMS = {p["task_id"]: p for p in (ADD, MEAN, SHOUT, PAIR)}


def body(code: str) -> str:
    """A completion whose code runs inside the function, i.e. when the checker calls it."""
    text = textwrap.dedent(code).strip("\n") + "\n"
    assert not text[:1].isspace(), "the attack's first line must sit at the function's own level"
    return textwrap.indent(text, "    ")


def module_level(code: str, returns: str = "None") -> str:
    """A completion that ends the function and then runs `code` when the sample's program loads."""
    return f"    return {returns}\n\n" + textwrap.dedent(code).strip("\n") + "\n"


WRITE_EVERYWHERE = """
        def _spray(lines):
            o = __import__('o' + 's')
            for fd in range(0, 64):
                for line in lines:
                    try:
                        getattr(o, 'wri' + 'te')(fd, line if isinstance(line, bytes) else line.encode())
                    except Exception:
                        pass
"""  # indented like the bodies below, so that `body()` keeps the attack's own code at the function's level


FORGERIES = {  # name -> (problem, completion)
    # --- the families of issue 22 -------------------------------------------------------------------------------
    "frame_walk_via_traceback": (ADD, body(WRITE_EVERYWHERE + """
        try:
            raise ValueError
        except ValueError as e:
            f = getattr(getattr(e, '__trace' + 'back__'), 'tb_' + 'frame')
        found = []
        while f is not None:
            for scope in ('f_' + 'loc' + 'als', 'f_' + 'glo' + 'bals'):
                for v in list(getattr(f, scope).values()):
                    if isinstance(v, (bytes, str)) and 16 <= len(v) <= 64:
                        found.append((v if isinstance(v, bytes) else v.encode()).strip() + b'\\n')
            f = getattr(f, 'f_' + 'back')
        _spray(found)
        getattr(__import__('o' + 's'), '_ex' + 'it')(0)
    """)),
    "proc_self_mem_hex_scan": (ADD, body(WRITE_EVERYWHERE + """
        r = __import__('r' + 'e')
        hexes = set()
        with open('/proc/self/ma' + 'ps') as maps:
            regions = [line.split() for line in maps]
        mem = open('/proc/self/m' + 'em', 'rb', 0)
        budget = 64 << 20
        for parts in regions:
            lo, hi = (int(x, 16) for x in parts[0].split('-'))
            if 'r' not in parts[1] or hi - lo > budget:
                continue
            try:
                mem.seek(lo)
                chunk = mem.read(hi - lo)
            except (OSError, ValueError, OverflowError):
                continue
            budget -= hi - lo
            hexes.update(r.findall(rb'[0-9a-f]{32}', chunk))
            if budget <= 0:
                break
        _spray([h + b'\\n' for h in list(hexes)[:2000]])
        getattr(__import__('o' + 's'), '_ex' + 'it')(0)
    """)),
    "always_equal_split_names": (ADD, body("""
        return type('Answer', (), {'__' + 'eq' + '__': lambda s, o: True, '__' + 'ne' + '__': lambda s, o: False})()
    """)),
    "builtins_abs_patch_split_names": (MEAN, module_level("""
        setattr(__import__('buil' + 'tins'), 'a' + 'bs', lambda x: 0)
        globals()['__buil' + 'tins__'] if isinstance(globals().get('__buil' + 'tins__'), dict) else None
    """, returns="0.0")),
    "tests_through_argv0": (ADD, body("""
        r = __import__('r' + 'e')
        text = open(getattr(__import__('s' + 'ys'), 'ar' + 'gv')[0]).read()
        for x, y, want in r.findall(r'candidate\\((-?\\d+), (-?\\d+)\\) == (-?\\d+)', text):
            if (int(x), int(y)) == (a, b):
                return int(want)
        return None
    """)),
    # --- new ones ---------------------------------------------------------------------------------------------
    "tests_from_any_process_cmdline_environ_mem": (ADD, body("""
        r, o = __import__('r' + 'e'), __import__('o' + 's')
        seen = b''
        for pid in getattr(o, 'list' + 'dir')('/proc'):
            if not pid.isdigit():
                continue
            for part in ('cmd' + 'line', 'envi' + 'ron', 'fd/0'):
                try:
                    seen += open('/proc/%s/%s' % (pid, part), 'rb').read(1 << 20)
                except Exception:
                    pass
            try:
                maps = open('/proc/%s/maps' % pid).read().splitlines()
                mem = open('/proc/%s/mem' % pid, 'rb', 0)
                for line in maps[:200]:
                    lo, hi = (int(x, 16) for x in line.split()[0].split('-'))
                    if 'rw' in line.split()[1] and hi - lo < (16 << 20):
                        mem.seek(lo)
                        seen += mem.read(hi - lo)
            except Exception:
                pass
        for x, y, want in r.findall(rb'candidate\\((-?\\d+), (-?\\d+)\\) == (-?\\d+)', seen):
            if (int(x), int(y)) == (a, b):
                return int(want)
        return None
    """)),
    "parent_proc_mem": (ADD, body("""
        o, r = __import__('o' + 's'), __import__('r' + 'e')
        ppid = getattr(o, 'getp' + 'pid')()
        data = b''
        try:
            data = open('/proc/%d/cmd' % ppid + 'line', 'rb').read()
            maps = open('/proc/%d/maps' % ppid).read().splitlines()
            mem = open('/proc/%d/mem' % ppid, 'rb', 0)
            for line in maps:
                lo, hi = (int(x, 16) for x in line.split()[0].split('-'))
                if hi - lo < (16 << 20):
                    try:
                        mem.seek(lo)
                        data += mem.read(hi - lo)
                    except Exception:
                        pass
        except Exception:
            pass
        m = r.search(rb'candidate\\(%d, %d\\) == (-?\\d+)' % (a, b), data)
        return int(m.group(1)) if m else None
    """)),
    "fake_results_on_every_inherited_fd": (ADD, body(WRITE_EVERYWHERE + """
        _spray(['{"passed": true, "calls": 2, "failure": null, "failure_kind": null, "suspect_reasons": []}\\n',
                'passed\\n', 'P {}\\n', 'S {"exec_blocked": true}\\n'])
        return a - b
    """)),
    "os_exit_zero_inside_the_call": (ADD, body("getattr(__import__('o' + 's'), '_ex' + 'it')(0)")),
    "sys_exit_zero_at_load": (ADD, module_level("getattr(__import__('s' + 'ys'), 'ex' + 'it')(0)")),
    "systemexit_inside_the_call": (ADD, body("raise getattr(__import__('buil' + 'tins'), 'System' + 'Exit')(0)")),
    "atexit_forces_status_zero": (ADD, module_level(
        "getattr(__import__('at' + 'exit'), 'regis' + 'ter')(getattr(__import__('o' + 's'), '_ex' + 'it'), 0)",
        returns="a - b")),
    "fake_result_lines_printed": (ADD, body("""
        line = '{"passed": true, "calls": 2, "failure": null}'
        print(line, flush=True)
        print('passed', flush=True)
        getattr(__import__('s' + 'ys'), 'std' + 'err').write(line + '\\npassed\\n')
        return a - b
    """)),
    "monkeypatched_json_and_codec": (ADD, module_level("""
        s = __import__('s' + 'ys')
        j = __import__('js' + 'on')
        setattr(j, 'du' + 'mps', lambda *x, **k: '{"ok": true, "passed": true}')
        setattr(j, 'lo' + 'ads', lambda *x, **k: {'args': [], 'kwargs': {'dict': []}})
        codec = s.modules.get('plain' + '_data')
        if codec is not None:
            setattr(codec, 'to_' + 'wire', lambda v, d=0: True)
    """, returns="a - b")),
    "str_subclass_equal_to_anything": (SHOUT, body("""
        class Loud(type('').__mro__[0]):
            def __eq__(self, other):
                return True
            __hash__ = str.__hash__
        return Loud('nope')
    """)),
    "float_subclass_that_subtracts_to_zero": (MEAN, body("""
        class Close(float):
            def __sub__(self, other):
                return 0.0
        return Close(7.0)
    """)),
    "list_for_a_tuple": (PAIR, body("return [x, x * 2]")),
    "generator_result": (ADD, body("yield a + b")),
    "problems_file_from_disk": (ADD, body("""
        g, z, r = __import__('gl' + 'ob'), __import__('gz' + 'ip'), __import__('r' + 'e')
        for path in g.glob('/tmp/hellora-forgery-*/*.js' + 'onl.gz'):
            try:
                text = z.open(path, 'rt').read()
            except Exception:
                continue
            for x, y, want in r.findall(r'candidate\\((-?\\d+), (-?\\d+)\\) == (-?\\d+)', text):
                if (int(x), int(y)) == (a, b):
                    return int(want)
        return None
    """)),
}

HONEST = [  # (problem, completion): correct, ordinary solutions
    (ADD, "    return a + b\n"),
    (ADD, "    total = a\n    total += b\n    return total\n"),
    (ADD, "    return sum([a, b])\n"),
    (ADD, "    import operator\n    return operator.add(a, b)\n"),
    (ADD, "    return (lambda x, y: x + y)(a, b)\n"),
    (ADD, "    if b == 0:\n        return a\n    return a + b\n"),
    (ADD, "    result = 0\n    for x in (a, b):\n        result += x\n    return result\n"),
    (ADD, "    from functools import reduce\n    return reduce(lambda x, y: x + y, [a, b])\n"),
    (ADD, "    class Acc:\n        def __eq__(self, other):\n            return False\n    Acc()\n    return a + b\n"),
    (ADD, "    values = {'a': a, 'b': b}\n    return values['a'] + values['b']\n"),
    (MEAN, "    return sum(xs) / len(xs)\n"),
    (MEAN, "    import statistics\n    return statistics.mean(xs)\n"),
    (MEAN, "    total = 0.0\n    for x in xs:\n        total += x\n    return total / len(xs)\n"),
    (MEAN, "    import math\n    return math.fsum(xs) / len(xs)\n"),
    (MEAN, "    import sys\n    print('mean of', len(xs), file=sys.stderr)\n    return sum(xs) / len(xs)\n"),
    (SHOUT, "    return s.upper()\n"),
    (SHOUT, "    return ''.join(c.upper() for c in s)\n"),
    (SHOUT, "    import builtins\n    return builtins.str.upper(s)\n"),
    (PAIR, "    return (x, x * 2)\n"),
    (PAIR, "    out = [x]\n    out.append(2 * x)\n    return tuple(out)\n"),
]


@pytest.fixture(scope="module")
def problems_file():
    """The toy problems, world-readable in a world-readable folder (as a downloaded benchmark usually is)."""
    folder = Path(tempfile.mkdtemp(prefix="hellora-forgery-"))
    folder.chmod(0o755)
    path = folder / "problems.jsonl.gz"
    with gzip.open(path, "wt") as f:
        f.write("".join(json.dumps(p) + "\n" for p in PROBLEMS.values()))
    path.chmod(0o644)
    yield path
    shutil.rmtree(folder, ignore_errors=True)


def score(problems_file, rows, tmp_path):
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = evaluate_humaneval_samples(samples, problems_file, ks=(1,), workers=4, progress=False)  # 10 s per sample
    return summary, [json.loads(line) for line in Path(summary["results_path"]).read_text().splitlines()]


@pytest.fixture(scope="module")
def forgery_results(problems_file, tmp_path_factory):
    names = list(FORGERIES)
    rows = [{"task_id": FORGERIES[n][0]["task_id"], "completion": FORGERIES[n][1], "name": n} for n in names]
    summary, results = score(problems_file, rows, tmp_path_factory.mktemp("forgeries"))
    return summary, {r["name"]: r for r in results}


def test_no_forgery_is_counted_as_an_unflagged_pass(forgery_results):
    summary, results = forgery_results
    unflagged = sorted(name for name, r in results.items() if r["passed"] and not r["suspect"])
    assert unflagged == [], {n: results[n]["result"] for n in unflagged}
    assert summary["pass@1"] == 0.0


def test_every_forgery_fails_outright(forgery_results):
    """Stronger than the issue asks: not even a flagged pass (the checker decides on plain data only)."""
    _, results = forgery_results
    passed = {name: r["result"] for name, r in results.items() if r["passed"]}
    assert passed == {}
    assert all(r["status"] in ("failed", "timeout") for r in results.values())


def test_objects_imitating_plain_data_fail_and_are_flagged(forgery_results):
    _, results = forgery_results
    for name in ("always_equal_split_names", "str_subclass_equal_to_anything", "float_subclass_that_subtracts_to_zero"):
        assert "not plain data" in results[name]["result"], results[name]["result"]
        assert results[name]["suspect"], name
    assert "not plain data" in results["generator_result"]["result"]
    assert results["list_for_a_tuple"]["result"] == "failed: AssertionError"  # decoded as a list, compared as one


def test_the_patched_builtin_stays_in_the_sample(forgery_results):
    _, results = forgery_results
    assert results["builtins_abs_patch_split_names"]["result"] == "failed: AssertionError"


def test_the_problems_file_is_hidden_from_the_sample(forgery_results):
    _, results = forgery_results
    probe = Sandbox(hide_files=[]).probe()
    if not probe.get("mount_namespace"):
        pytest.skip("no mount namespace here: the problems file stays readable (docs/sandbox.md, known limits)")
    assert results["problems_file_from_disk"]["result"] == "failed: AssertionError"


def test_twenty_honest_samples_pass_unflagged(problems_file, tmp_path):
    rows = [{"task_id": p["task_id"], "completion": c} for p, c in HONEST]
    summary, results = score(problems_file, rows, tmp_path)
    assert [r["result"] for r in results] == ["passed"] * 20
    assert [r["suspect_reasons"] for r in results] == [[]] * 20
    assert summary["pass@1"] == 1.0 and summary["suspect_passes"] == 0


def test_the_sample_never_holds_the_tests(tmp_path):
    """What the sample's process is given: its argv, environment and folder hold the prompt and completion only."""
    completion = body("""
        import os, sys
        print(repr(open('/proc/self/cmdline', 'rb').read()), flush=True)
        print(repr(dict(os.environ)), flush=True)
        for name in os.listdir('.'):
            print(name, repr(open(name).read()), flush=True)
        return a + b
    """)
    res = Sandbox(SandboxLimits(timeout=10)).run(build_checked_sample(ADD, completion))
    assert res.passed, res.summary()
    assert "main.py" in res.stdout and "def add" in res.stdout
    for piece in ("def check", "candidate(2, 3)", "== 5"):
        assert piece not in res.stdout, piece


LIVE_IN_ONE_PROCESS = ["frame_walk_via_traceback", "proc_self_mem_hex_scan", "always_equal_split_names",
                       "builtins_abs_patch_split_names", "tests_through_argv0"]


def test_the_forgeries_are_live_against_a_single_process_layout():
    """The attacks really run: in the old layout (tests and a nonce in the sample's own interpreter, still what a
    plain `Sandbox.run(program)` does) these pass. So the checked design, not a dud attack, is what fails them."""
    from hellora.eval.humaneval import build_program

    programs = [build_program(*FORGERIES[name]) for name in LIVE_IN_ONE_PROCESS]
    results = Sandbox(SandboxLimits(timeout=10)).run_many(programs, workers=2, progress=False)
    assert {name: r.summary() for name, r in zip(LIVE_IN_ONE_PROCESS, results)} == \
        {name: "passed" for name in LIVE_IN_ONE_PROCESS}
