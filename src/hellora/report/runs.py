"""The run folders `hellora report` reads, and which of them may be pooled into one row.

A row of the report pools runs only when their resolved configs are equal in everything but the seeds (`SEED_FIELDS`)
and the bookkeeping fields that cannot change a result (`IGNORED_FIELDS`). Runs with the same method label but other
configs (40 vs 200 steps, another learning rate) become separate rows whose labels name the differing fields, and the
report says why they were split. Runs that did not finish (`running`, `interrupted`, `failed`, a mid-run `diverged`)
are left out unless asked for; runs that finished but trained nothing useful (`degenerate`, or a completed run whose
loss blew up, `diverged`) are kept in rows of their own and flagged.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from hellora.quant.run import storage_label
from hellora.report.labels import method_label
from hellora.utils.errors import HelloraError
from hellora.utils.io import read_json
from hellora.utils.yaml_values import read_yaml

log = logging.getLogger(__name__)

# Fields that only choose a seed: runs differing in them are replicates of one config.
SEED_FIELDS = frozenset({"train.seed", "profile.seed", "selection.seed", "study.base_seed", "study.ft_seed"})
# Fields that cannot change a result (where files go, how often they are written or logged).
IGNORED_FIELDS = frozenset({"output_dir", "train.logging_steps", "train.save_steps", "train.save_total_limit",
                            "train.report_to", "eval.batch_size"})
COMPLETED = ("finished", "degenerate", "diverged")  # statuses of runs that reached the end of training


@dataclass
class Run:
    """One run folder as the report sees it; `scores` maps (task, metric) to a percentage."""

    path: Path
    status: dict
    config: dict
    scores: dict
    label: str
    flat: dict = field(default_factory=dict)  # "section.key" -> value, from config.yaml

    @property
    def state(self) -> str:
        """run.json's status (`finished`, `degenerate`, `diverged`, `interrupted`, `failed`, `running`)."""
        return str(self.status.get("status", "unknown"))

    @property
    def completed(self) -> bool:
        """Training reached its end (the scores describe the trained adapter)."""
        return self.state in COMPLETED and (self.state == "finished" or bool(self.status.get("completed")))

    @property
    def group(self) -> tuple:
        return (self.config.get("model", {}).get("name"), self.config.get("data", {}).get("task"))

    @property
    def base(self) -> int | None:
        """The base model's seed for study and sweep runs that train several bases, else None."""
        study = self.config.get("study") or {}
        return study.get("base_seed")

    def seed_key(self) -> tuple:
        """What pairs two runs of different methods: the study's (base seed, fine-tune seed), else the train seed."""
        study = self.config.get("study") or {}
        if "ft_seed" in study:
            return (study.get("base_seed"), study["ft_seed"])
        return (self.config.get("train", {}).get("seed", self.config.get("adapter", {}).get("seed")),)

    def config_key(self) -> str:
        """The config without its seeds and bookkeeping fields: equal keys may be pooled."""
        kept = {k: v for k, v in self.flat.items() if k not in SEED_FIELDS and k not in IGNORED_FIELDS}
        return json.dumps(kept, sort_keys=True, default=str)


def load_average(run: Run) -> float | None:
    """The 1-minute load average recorded when training started (None for runs that did not record it)."""
    value = run.status.get("steps", {}).get("train", {}).get("load_avg_1m")
    return float(value) if isinstance(value, (int, float)) else None


def flatten(config: dict) -> dict:
    """{"section.key": value} for a two-level config (top-level scalars keep their own name)."""
    flat = {}
    for section, value in config.items():
        if isinstance(value, dict):
            flat.update({f"{section}.{key}": v for key, v in value.items()})
        else:
            flat[section] = value
    return flat


def _scores(path: Path) -> dict:
    scores = {}
    eval_dir = path / "eval"
    for file in sorted(eval_dir.glob("eval_*.json")) if eval_dir.is_dir() else []:
        report = read_json(file, "eval result")
        if not isinstance(report, dict) or "task" not in report:
            raise HelloraError(f"{file}: not a hellora eval result (no 'task')")
        s = report.get("scores", {})
        try:
            if report["task"] == "proxy":  # the proxy study's exact-match accuracies
                scores.update({("proxy", k): 100 * float(v) for k, v in s.items()})
            elif "headline" in report:  # hellora.eval.run: the protocol's headline numbers
                scores.update({(report["task"], k): 100 * float(v) for k, v in report["headline"].items()})
            elif report["task"] == "gsm8k":
                scores[("gsm8k", "accuracy")] = 100 * float(s["accuracy"]["paper"])
            elif report["task"] == "humaneval":
                scores.update({("humaneval", k): 100 * float(v) for k, v in s.items() if k.startswith("pass@")})
            else:
                scores[(report["task"], "refusal_rate")] = 100 * float(s["refusal_rate"])
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise HelloraError(f"{file}: unreadable scores ({type(e).__name__}: {e})") from None
    return scores


def load_run(path: str | Path) -> Run:
    """Read one run folder (run.json, config.yaml, eval/eval_*.json); refuses a folder that is not a run."""
    path = Path(path)
    if not (path / "run.json").is_file():
        raise HelloraError(f"{path}: not a hellora run folder (no run.json)")
    status = read_json(path / "run.json", "run status")
    if not isinstance(status, dict) or not isinstance(status.get("steps", {}), dict):
        raise HelloraError(f"{path / 'run.json'}: not a hellora run status (expected an object with 'steps')")
    status.setdefault("steps", {})
    saved = path / "config.yaml"
    config = read_yaml(saved, "run config", empty_ok=False) if saved.is_file() else {}
    label = method_label(config.get("adapter") or {}, config.get("selection") or {}, config.get("profile")) \
        + storage_label(config.get("model") or {})  # e.g. " cold=nf4": experts stored quantized
    return Run(path=path, status=status, config=config, scores=_scores(path), label=label, flat=flatten(config))


def split_unfinished(runs: list[Run], include_unfinished: bool) -> tuple[list[Run], list[str]]:
    """(the runs to report, one warning per run that did not finish). Unfinished runs are dropped unless
    `include_unfinished`; then they are kept (in rows of their own, see `pool_rows`)."""
    warnings = []
    kept = []
    for run in runs:
        if run.completed:
            kept.append(run)
            continue
        reason = run.status.get("reason")
        what = f"{run.path}: status {run.state}" + (f" ({reason})" if reason else "")
        if include_unfinished:
            warnings.append(what + "; included as asked (--include-unfinished), in a row of its own")
            kept.append(run)
        else:
            warnings.append(what + "; left out (--include-unfinished to show it)")
    return kept, warnings


@dataclass
class Row:
    """Runs pooled into one table row: one config, several seeds."""

    label: str
    runs: list[Run]
    note: str | None = None  # why this row is apart from others of the same method label


def _describe_difference(diffs: dict[str, list]) -> str:
    return ", ".join(f"{name} {'/'.join(str(v) for v in values)}" for name, values in sorted(diffs.items()))


def pool_rows(runs: list[Run]) -> tuple[list[Row], list[str]]:
    """Group runs into rows of equal config (seeds aside) and status class; returns (rows, notes).

    Runs sharing a method label but not a config get one row each, labelled by the fields in which they differ; the
    notes say which fields kept them apart. Runs that did not finish cleanly get their status in the label."""
    by_key: dict[tuple, list[Run]] = defaultdict(list)
    for run in runs:
        state = "" if run.state == "finished" else run.state
        by_key[(run.label, state, run.config_key())].append(run)
    by_label: dict[tuple, list[tuple]] = defaultdict(list)
    for key in by_key:
        by_label[key[:2]].append(key)
    rows, notes = [], []
    for (label, state), keys in by_label.items():
        suffix = f" [{state}]" if state else ""
        if len(keys) == 1:
            rows.append(Row(label + suffix, by_key[keys[0]]))
            continue
        flats = [by_key[k][0].flat for k in keys]
        names = sorted({n for f in flats for n in f} - SEED_FIELDS - IGNORED_FIELDS)
        differing = [n for n in names if len({json.dumps(f.get(n), default=str) for f in flats}) > 1]
        notes.append(f"{label}{suffix}: {sum(len(by_key[k]) for k in keys)} runs in {len(keys)} configs that differ "
                     f"in more than the seed, not pooled: " +
                     _describe_difference({n: [f.get(n) for f in flats] for n in differing}))
        for key, flat in zip(keys, flats):
            detail = ", ".join(f"{n}={flat.get(n)}" for n in differing)
            rows.append(Row(f"{label}{suffix} ({detail})", by_key[key], note=detail))
    return rows, notes


def duplicate_seeds(row: Row) -> list[str]:
    """Warnings for runs of one row that share a seed (the same config run twice is not a second sample)."""
    seen: dict[tuple, list[Run]] = defaultdict(list)
    for run in row.runs:
        seen[run.seed_key()].append(run)
    return [f"{row.label}: runs {', '.join(str(r.path) for r in same)} have the same config and seed "
            f"{key if len(key) > 1 else key[0]}; their mean counts as one sample"
            for key, same in seen.items() if len(same) > 1]


def health_flags(runs: list[Run]) -> list[str]:
    """One line per run whose training ended degenerate or diverged, with the recorded reason."""
    flags = []
    for run in runs:
        if run.state in ("degenerate", "diverged"):
            reason = run.status.get("reason") or "; ".join(run.status.get("steps", {}).get("train", {})
                                                           .get("warnings", []))
            flags.append(f"{run.path}: {run.state}" + (f": {reason}" if reason else ""))
    return flags
