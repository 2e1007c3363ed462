"""docs/results.md is what its data says: the committed page equals its regeneration from docs/data/proxy-v2
(study.json recomputed from runs.jsonl and before.jsonl, then rendered below the page's marker)."""

from pathlib import Path

from hellora.study.results_doc import MARKER, regenerate, render

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "docs" / "data" / "proxy-v2"
PAGE = ROOT / "docs" / "results.md"


def test_the_published_data_is_committed_small_and_complete():
    names = {p.name for p in DATA.iterdir()}
    assert {"study.json", "runs.jsonl", "before.jsonl"} <= names
    assert sum(p.stat().st_size for p in DATA.iterdir()) < 5_000_000


def test_committed_page_equals_its_regeneration_from_the_committed_data():
    study = regenerate(DATA)  # refuses a study.json that differs from its recomputation
    text = PAGE.read_text()
    assert MARKER in text
    assert text == render(study, PAGE, "img")
