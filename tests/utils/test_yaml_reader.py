"""`read_yaml`, the one reader of recipes, study configs, sweeps and saved run configs: one line per mistake."""

import pytest

from hellora.report.runs import load_run
from hellora.study.config import StudyConfig
from hellora.sweep import load_sweep
from hellora.utils.errors import HelloraError
from hellora.utils.yaml_values import OverrideRules, apply_overrides, parse_yaml_text, read_yaml


def test_numbers_read_as_people_type_them_and_an_empty_file_is_empty(tmp_path):
    (tmp_path / "a.yaml").write_text("train:\n  learning_rate: 2e-4\n", encoding="utf-8")
    (tmp_path / "empty.yaml").write_text("", encoding="utf-8")
    assert read_yaml(tmp_path / "a.yaml", "recipe") == {"train": {"learning_rate": 2e-4}}
    assert read_yaml(tmp_path / "empty.yaml", "recipe") == {}
    with pytest.raises(HelloraError, match="empty.yaml: expected key: value pairs, got an empty file"):
        read_yaml(tmp_path / "empty.yaml", "run config", empty_ok=False)


@pytest.mark.parametrize("name, content, words", [
    ("missing.yaml", None, ["sweep not found", "missing.yaml", "see x/"]),
    ("folder", "DIR", ["sweep", "is a folder", "YAML file"]),
    ("bin.yaml", b"\xff\xfe\x00", ["bin.yaml", "not a text file"]),
    ("bad.yaml", "a: 1\nb: [1\nc: 2\n", ["sweep", "bad.yaml line", "invalid YAML"]),
    ("list.yaml", "- 1\n- 2\n", ["list.yaml", "expected key: value pairs, got a list"]),
])
def test_each_mistake_is_one_line_naming_the_file(tmp_path, name, content, words):
    path = tmp_path / name
    if content == "DIR":
        path.mkdir()
    elif isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(HelloraError) as e:
        read_yaml(path, "sweep", hint="see x/")
    assert "\n" not in str(e.value) and all(w in str(e.value) for w in words), str(e.value)


def test_a_syntax_error_in_text_names_its_line():
    with pytest.raises(HelloraError, match=r"^run config c\.yaml line 2: invalid YAML"):
        parse_yaml_text("a: 1\nb: x: y\n", "run config c.yaml")


def test_overrides_nest_copy_record_their_source_and_obey_the_rules(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("model:\n  overrides: {layers: 4}\ndata:\n  task: skill\n", encoding="utf-8")
    sources: dict = {}
    data = read_yaml(path, "recipe", overrides=["model.overrides.layers=2", "train.lr=1e-3"], sources=sources)
    assert data == {"model": {"overrides": {"layers": 2}}, "data": {"task": "skill"}, "train": {"lr": 1e-3}}
    assert sources["data.task"] == f"recipe {path} line 4" and sources["model"] == "override model.overrides.layers=2"
    original = {"model": {"overrides": {"layers": 4}}}
    apply_overrides(original, ["model.overrides.layers=2"])
    assert original == {"model": {"overrides": {"layers": 4}}}  # the caller's dict is never changed

    def no_b(parts, value, item):
        if parts[0] == "b":
            raise HelloraError(f"override {item!r}: no b")
        return value

    rules = OverrideRules(check=no_b, example="a.x=1")
    with pytest.raises(HelloraError, match="no b"):
        apply_overrides({}, ["b.x=1"], rules=rules)
    with pytest.raises(HelloraError, match=r"'a\.x': expected key=value, e\.g\. a\.x=1"):
        apply_overrides({}, ["a.x"], rules=rules)
    with pytest.raises(HelloraError, match="a.x is not a mapping"):
        apply_overrides({"a": {"x": 1}}, ["a.x.y=2"])


def test_the_sweep_study_and_report_readers_are_this_one(tmp_path):
    (tmp_path / "s.yaml").write_text("- base\n", encoding="utf-8")
    with pytest.raises(HelloraError, match="sweep .*s.yaml: expected key: value pairs"):
        load_sweep(tmp_path / "s.yaml")
    with pytest.raises(HelloraError, match="proxy config .*s.yaml: expected key: value pairs"):
        StudyConfig.from_yaml(tmp_path / "s.yaml")
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text('{"steps": {}}', encoding="utf-8")
    (run / "config.yaml").write_text("adapter: {method: lora\n", encoding="utf-8")
    with pytest.raises(HelloraError, match="run config .*config.yaml line 2: invalid YAML"):
        load_run(run)
