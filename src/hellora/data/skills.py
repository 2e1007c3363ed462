"""Synthetic multi-skill data: tiny, exactly-checkable prompt/answer pairs for the CPU demo and small studies.

HELLoRA's premise is that a task routes most tokens to a few "hot" experts per layer, and that different tasks
heat different experts. Checking that on a toy MoE needs data where (a) tasks are clearly distinct, (b) answers
are exactly right or wrong, and (c) everything fits a character-level tokenizer and a model trained in seconds.
Each skill here has its own surface form (an operator, a keyword, a question shape), so a router can learn to
tell them apart; prompts are under 40 characters and answers under 12.

Skills: add, sub, mul ("12+7=" -> "19"), reverse, sort, count, upper, copy, max, shift (a Caesar shift by one
letter, a string transform), and `word` - two-step
arithmetic word problems in the style of GSM8K ("Ann had 5 pens, got 3, lost 2. Now?" -> "6").

Determinism: examples depend only on (skill, n, seed, split, test_fraction), through `random.Random` seeded with
a string, which Python hashes with SHA-512 - the same on every machine and run (unlike `hash()`).

Disjoint splits: an example's split is decided by its prompt alone - a SHA-256 of the prompt, read as a number in
[0, 1), is below `test_fraction` for "test" and at or above it for "train". The same prompt therefore can never be
in both splits, however many examples or seeds are drawn, as long as both splits use the same `test_fraction`.
Within one call prompts are unique, so a test set has no repeated items.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from typing import Callable, Iterable

from hellora.utils.errors import HelloraError

MAX_PROMPT_CHARS = 39  # prompts are shorter than 40 characters
MAX_ANSWER_CHARS = 11  # answers are shorter than 12 characters
DEFAULT_TEST_FRACTION = 0.2

_LETTERS = "abcdefghijklmnopqrstuvwxyz"
_NAMES = ("Ann", "Bob", "Cy", "Dee", "Eve", "Gus", "Hal", "Ivy", "Jo", "Kim", "Lu", "Max", "Ned", "Oz", "Sam")
_THINGS = ("pens", "eggs", "cards", "cups", "books", "coins", "toys", "figs")

Example = tuple[str, str]


@dataclass(frozen=True)
class Skill:
    """One synthetic skill: `make(rng)` draws a random (prompt, answer) pair."""

    name: str
    description: str
    make: Callable[[random.Random], Example]


def _word(rng: random.Random, lo: int, hi: int, alphabet: str = _LETTERS) -> str:
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(lo, hi)))


def _add(rng):
    a, b = rng.randint(0, 99), rng.randint(0, 99)
    return f"{a}+{b}=", str(a + b)


def _sub(rng):
    a = rng.randint(0, 99)
    b = rng.randint(0, a)  # non-negative results: no minus sign to learn
    return f"{a}-{b}=", str(a - b)


def _mul(rng):
    a, b = rng.randint(2, 99), rng.randint(2, 12)
    return f"{a}*{b}=", str(a * b)


def _reverse(rng):
    w = _word(rng, 3, 8)
    return f"reverse {w} ->", w[::-1]


def _sort(rng):
    digits = [rng.randint(0, 9) for _ in range(rng.randint(3, 6))]
    return f"sort {' '.join(map(str, digits))} ->", " ".join(map(str, sorted(digits)))


def _count(rng):
    letter = rng.choice("abcd")
    s = _word(rng, 5, 12, alphabet="abcd")
    return f"count {letter} in {s}?", str(s.count(letter))


def _upper(rng):
    w = _word(rng, 3, 8)
    return f"upper {w} ->", w.upper()


def _copy(rng):
    s = _word(rng, 3, 8, alphabet=_LETTERS + "0123456789")
    return f"copy {s} ->", s


def _max(rng):
    xs = [rng.randint(0, 99) for _ in range(rng.randint(3, 5))]
    return f"max({','.join(map(str, xs))})=", str(max(xs))


def _shift(rng):
    w = _word(rng, 3, 8)
    return f"shift {w} ->", "".join(_LETTERS[(_LETTERS.index(c) + 1) % 26] for c in w)


def _word_problem(rng):
    name = rng.choice(_NAMES)
    form = rng.randrange(3)
    if form == 0:  # gain, then loss
        thing = rng.choice(_THINGS)
        a, b = rng.randint(2, 20), rng.randint(1, 20)
        c = rng.randint(1, a + b)
        return f"{name} had {a} {thing}, got {b}, lost {c}. Now?", str(a + b - c)
    a, b = rng.randint(2, 9), rng.randint(2, 9)
    if form == 1:  # groups, then extra
        c = rng.randint(1, 20)
        return f"{name} has {a} bags of {b} and {c} more. Total?", str(a * b + c)
    c = rng.randint(1, a * b)  # groups, then loss
    return f"{name} buys {a} bags of {b}, eats {c}. Left?", str(a * b - c)


SKILLS: dict[str, Skill] = {
    s.name: s
    for s in (
        Skill("add", "add two numbers below 100: '12+7=' -> '19'", _add),
        Skill("sub", "subtract, result never negative: '31-9=' -> '22'", _sub),
        Skill("mul", "multiply 2..99 by 2..12: '6*7=' -> '42'", _mul),
        Skill("reverse", "reverse a lowercase word: 'reverse cat ->' -> 'tac'", _reverse),
        Skill("sort", "sort 3-6 digits: 'sort 5 3 9 ->' -> '3 5 9'", _sort),
        Skill("count", "count a letter: 'count a in abca?' -> '2'", _count),
        Skill("upper", "upper-case a word: 'upper cat ->' -> 'CAT'", _upper),
        Skill("copy", "copy a short string: 'copy x7q ->' -> 'x7q'", _copy),
        Skill("max", "largest of 3-5 numbers: 'max(4,17,9)=' -> '17'", _max),
        Skill("shift", "shift each letter one place on (Caesar, z -> a): 'shift cat ->' -> 'dbu'", _shift),
        Skill("word", "two-step word problem: 'Ann had 5 pens, got 3, lost 2. Now?' -> '6'", _word_problem),
    )
}


def split_of(prompt: str, test_fraction: float = DEFAULT_TEST_FRACTION) -> str:
    """'test' or 'train' for a prompt, from a hash of the prompt alone (see the module docstring)."""
    digest = hashlib.sha256(prompt.encode("utf-8")).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64
    return "test" if u < test_fraction else "train"


def _check_args(n: int, seed: int, split: str, test_fraction: float) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise HelloraError(f"n must be a positive integer, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise HelloraError(f"seed must be an integer, got {seed!r}")
    if split not in ("train", "test"):
        raise HelloraError(f"split must be 'train' or 'test', got {split!r}")
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not 0 < test_fraction < 1:
        raise HelloraError(f"test_fraction must be a number in (0, 1), got {test_fraction!r}")


def _get_skill(name: str) -> Skill:
    if name not in SKILLS:
        raise HelloraError(f"unknown skill '{name}'; known skills: {', '.join(SKILLS)}")
    return SKILLS[name]


def generate_skill_examples(
    skill: str,
    n: int,
    seed: int = 0,
    *,
    split: str = "train",
    test_fraction: float = DEFAULT_TEST_FRACTION,
) -> list[dict[str, str]]:
    """`n` distinct examples of one skill from one split: dicts with keys prompt, answer, skill.

    Raises `HelloraError` if the skill cannot supply `n` distinct prompts for the split (the `mul` test split,
    for instance, holds only about 200 prompts at the default test_fraction).
    """
    spec = _get_skill(skill)
    _check_args(n, seed, split, test_fraction)
    rng = random.Random(f"hellora-skills/{skill}/{split}/{seed}")
    seen: set[str] = set()
    out: list[dict[str, str]] = []
    attempts = 0
    limit = 1000 + 200 * n
    while len(out) < n:
        attempts += 1
        if attempts > limit:
            raise HelloraError(
                f"skill '{skill}' yielded only {len(out)} distinct {split} prompts after {limit} draws; ask for "
                f"fewer than n={n}"
            )
        prompt, answer = spec.make(rng)
        if prompt in seen or split_of(prompt, test_fraction) != split:
            continue
        seen.add(prompt)
        out.append({"prompt": prompt, "answer": answer, "skill": skill})
    return out


def mixture(
    skills: Iterable[str] | None = None,
    n_per_skill: int = 100,
    seed: int = 0,
    *,
    split: str = "train",
    test_fraction: float = DEFAULT_TEST_FRACTION,
    shuffle: bool = True,
) -> list[dict[str, str]]:
    """`n_per_skill` examples of each skill (all skills when `skills` is None), shuffled together by `seed`."""
    names = list(SKILLS) if skills is None else list(skills)
    if not names:
        raise HelloraError("skills must name at least one skill")
    if len(set(names)) != len(names):
        raise HelloraError(f"skills lists a skill twice: {names}")
    out: list[dict[str, str]] = []
    for name in names:
        out.extend(generate_skill_examples(name, n_per_skill, seed, split=split, test_fraction=test_fraction))
    if shuffle:
        random.Random(f"hellora-skills-mixture/{seed}").shuffle(out)
    return out


def exact_match(pred: str, answer: str) -> bool:
    """True when the prediction equals the answer, ignoring surrounding whitespace (and nothing else)."""
    return pred.strip() == answer.strip()
