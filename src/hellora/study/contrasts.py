"""Pre-registered contrasts of the proxy study: which two arms, on which per-base value, tested how.

A contrast is written in the recipe before the run (`primary:`, at most 3, Holm over them only) or derived from
the arms that ran (secondary, descriptive). Its value per base is one number per arm:

    test            test exact match (points) of the arm at the learning rate chosen by cross-fitting
                    (`hellora.study.analysis.cross_fit`), at the last step
    iso_retention   the other skills' mean exact match (points) at the moment the arm's target test accuracy
                    first reaches `iso_target`, interpolated along each lr's checkpoints, best lr (the frontier)

`kind` (hellora.choices.ContrastKind) superiority tests a - b != 0 (two-sided); noninferiority tests a - b > -margin (margin in points, stated in advance).
"""

from __future__ import annotations

from dataclasses import dataclass

from hellora.utils.errors import HelloraError
from hellora.choices import Choice, ContrastKind

MAX_PRIMARY = 3


class ContrastMetric(Choice):
    """The per-base value a contrast compares (see the module docstring)."""

    TEST = "test"
    ISO_RETENTION = "iso_retention"


@dataclass(frozen=True)
class Contrast:
    a: str
    b: str
    metric: ContrastMetric = ContrastMetric.TEST
    kind: ContrastKind = ContrastKind.SUPERIORITY
    margin: float = 0.0

    @property
    def name(self) -> str:
        if self.kind is ContrastKind.SUPERIORITY:
            return f"{self.a} vs {self.b} ({self.metric})"
        return f"{self.a} >= {self.b} - {self.margin:g} ({self.metric})"

    def to_dict(self) -> dict:
        return {"a": self.a, "b": self.b, "metric": str(self.metric), "kind": str(self.kind), "margin": self.margin}

    @classmethod
    def parse(cls, raw: object, where: str) -> Contrast:
        """A contrast from a recipe's mapping; errors name `where` (e.g. 'primary[1]') and the field."""
        if not isinstance(raw, dict):
            raise HelloraError(f"proxy config: {where} must be a mapping with a, b, metric, kind, margin")
        unknown = sorted(set(raw) - {"a", "b", "metric", "kind", "margin"})
        if unknown:
            raise HelloraError(f"proxy config: {where}: unknown key {unknown[0]!r}")
        for key in ("a", "b"):
            if not isinstance(raw.get(key), str):
                raise HelloraError(f"proxy config: {where}.{key} must name an arm")
        margin = raw.get("margin", 0.0)
        if isinstance(margin, bool) or not isinstance(margin, (int, float)) or margin < 0:
            raise HelloraError(f"proxy config: {where}.margin must be a number >= 0, got {margin!r}")
        kind = ContrastKind.parse(raw.get("kind", "superiority"), f"proxy config: {where}.kind")
        if kind is ContrastKind.SUPERIORITY and margin:
            raise HelloraError(f"proxy config: {where}.margin applies to kind noninferiority only")
        return cls(a=raw["a"], b=raw["b"], kind=kind, margin=float(margin),
                   metric=ContrastMetric.parse(raw.get("metric", "test"), f"proxy config: {where}.metric"))


# Pairs compared when both ran, beside every arm against lora and hellora: does keeping the hot experts in full
# precision matter, with the cold ones in NF4 either way (issue 24)?
PAIRS = (("hellora-cold-nf4", "hellora-all-nf4"),)


def secondary_contrasts(arms: list[str], primary: list[Contrast]) -> list[Contrast]:
    """Every arm against lora and against hellora, then `PAIRS`, on both metrics, minus the primaries
    (descriptive)."""
    taken = {(c.a, c.b, c.metric) for c in primary}
    out = []
    for reference in ("lora", "hellora"):
        if reference not in arms:
            continue
        for arm in arms:
            if arm == reference or (reference == "hellora" and arm == "lora"):
                continue
            a, b = (arm, reference) if reference == "lora" else ("hellora", arm)
            for metric in ContrastMetric:
                if (a, b, metric) not in taken:
                    out.append(Contrast(a=a, b=b, metric=metric))
    for a, b in PAIRS:
        if a in arms and b in arms:
            out += [Contrast(a=a, b=b, metric=metric) for metric in ContrastMetric if (a, b, metric) not in taken]
    return out
