"""The sandbox's self-test: a known-good and a known-bad HumanEval-style sample, run before any scoring.

Why (issue 26): a harness that cannot run samples at all (an interpreter the sample's uid cannot reach, a broken
driver or checker) used to report every sample as failed, so a model scored pass@k = 0 without a word. Scoring
starts only if the good sample passes and the bad one fails on the checker's assertion; anything else stops the
whole evaluation with one line.
"""

from __future__ import annotations

from hellora.eval.sandbox.checked import CheckedSample
from hellora.eval.sandbox.runner import Sandbox
from hellora.utils.errors import HelloraError

PROMPT = 'def add(a, b):\n    """a + b"""\n'
TEST = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate((1,), (2,)) == (1, 2)\n"
KNOWN_GOOD = CheckedSample(PROMPT + "    return a + b\n", "add", PROMPT, TEST, "    return a + b\n")
KNOWN_BAD = CheckedSample(PROMPT + "    return a - b if isinstance(a, int) else a\n", "add", PROMPT, TEST, "")


def self_test(sandbox: Sandbox) -> None:
    """Raise HelloraError (one line) unless the known-good sample passes and the known-bad one fails its check."""
    good, bad = sandbox.run_many([KNOWN_GOOD, KNOWN_BAD], workers=2, progress=False)
    problems = []
    if good.status != "passed":
        problems.append(f"a known-good sample came out {good.summary()}")
    if bad.status != "failed" or bad.check_failure_kind != "assertion":
        problems.append(f"a known-bad sample came out {bad.summary()}")
    if problems:
        text = " ".join("; ".join(problems).split())[:600]  # one line, whatever the launcher printed
        raise HelloraError(f"the sandbox self-test failed, so no sample was scored: {text} (see docs/sandbox.md)")
