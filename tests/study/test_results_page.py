"""Each published study page is what its data says: the committed page equals its regeneration from its
committed data folder (study.json recomputed from runs.jsonl and before.jsonl, then rendered below the page's
marker, with the figures linked from the image folder the page's command names)."""

from pathlib import Path

import pytest

from hellora.study.results_doc import MARKER, regenerate, render

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PUBLISHED = [  # (data folder, page, image folder relative to the page): the commands at the top of each page
    ("proxy-v3", "results.md", "img"),
    ("proxy-v2", "results-v2.md", "img/v2"),
    ("proxy-v2-ablations", "results-ablations-v2.md", "img/ablations-v2"),
    ("proxy-v2-quant", "results-quant.md", "img/quant"),
    ("proxy-v2-alt", "results-alt.md", "img/alt"),
]


@pytest.mark.parametrize("data, page, img", PUBLISHED)
def test_the_published_data_is_committed_small_and_complete(data, page, img):
    folder = DOCS / "data" / data
    names = {p.name for p in folder.iterdir()}
    assert {"study.json", "runs.jsonl", "before.jsonl"} <= names
    assert sum(p.stat().st_size for p in folder.iterdir()) < 5_000_000
    assert f"docs/data/{data} docs/{page}" in (DOCS / page).read_text()  # the page names its own command


@pytest.mark.parametrize("data, page, img", PUBLISHED)
def test_committed_page_equals_its_regeneration_from_the_committed_data(data, page, img):
    study = regenerate(DOCS / "data" / data)  # refuses a study.json that differs from its recomputation
    text = (DOCS / page).read_text()
    assert MARKER in text
    assert text == render(study, DOCS / page, img)
    for figure in study.get("figures", []):
        assert (DOCS / img / figure).is_file(), figure
