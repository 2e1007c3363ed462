"""The interface every evaluation task implements (`hellora.eval.tasks` holds the registry)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

from hellora.eval.protocols import HEADLINE_PROTOCOL, Protocol
from hellora.utils.errors import HelloraError

Judge = Callable[[str, str], bool]


class EvalTaskSpec:
    """One benchmark: how to load it, the prompt each protocol builds, how to score, what to headline.

    Subclasses set `name` and `protocols` and implement `load`, `prompt`, `score` and `headline`. A task the
    paper does not evaluate (the demo's skills) has no `lori` protocol: it sets `default_protocol`, which then
    stands in for the headline name too (recipes say `eval.protocol: lori` for every task).
    """

    name: str = ""
    protocols: Mapping[str, Protocol] = {}
    default_protocol: str = HEADLINE_PROTOCOL
    data_hint: str = ""  # where to get the data file, for tasks with no default copy to load (empty: has one)

    def protocol(self, name: str | None = None) -> Protocol:
        """The named protocol (default: the headline one), or one error naming the valid names."""
        name = name or self.default_protocol
        if name == HEADLINE_PROTOCOL and name not in self.protocols:
            name = self.default_protocol
        try:
            return self.protocols[name]
        except KeyError:
            raise HelloraError(f"protocol: {self.name} has no protocol {name!r}; choose one of "
                               f"{', '.join(self.protocols)}") from None

    def require_data(self, data: str | None, field: str = "--data") -> None:
        """Refuse a missing data file for a task with no default copy (`data_hint` says where to get one)."""
        if not data and self.data_hint:
            raise HelloraError(f"{field}: {self.name} needs {self.data_hint}")

    def check_protocol(self, protocol: Protocol) -> None:
        """Refuse settings this task cannot score (called on every resolved protocol, before any work)."""

    def load(self, data: str | None, limit: int | None) -> list[dict]:
        """The benchmark's records (the first `limit`), each a dict saved alongside its generations."""
        raise NotImplementedError

    def prompt(self, record: Mapping[str, Any], protocol: Protocol) -> str:
        raise NotImplementedError

    def score(self, generations: Path, *, data: str | None, protocol: Protocol, ks: tuple, progress: bool,
              judge: Judge | None = None) -> dict:
        """Every column of this task on a generations JSONL (`hellora.eval.generation.write_generations`)."""
        raise NotImplementedError

    def headline(self, scores: Mapping[str, Any], protocol: Protocol) -> dict:
        """The number(s) the paper reports for this task, under `protocol`'s scorer."""
        raise NotImplementedError
