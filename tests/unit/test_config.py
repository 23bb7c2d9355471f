from dataclasses import dataclass, field

import pytest

from polyglot_llama.config import field_docs, load_config, parse_override, read_yaml, write_resolved_config
from polyglot_llama.errors import UserError


@dataclass
class Inner:
    lr: float = 1.0
    """Learning rate."""
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])


@dataclass
class Outer:
    name: str = "x"
    """The name."""
    steps: int = 3
    flag: bool = False
    inner: Inner = field(default_factory=Inner)
    items: list[Inner] = field(default_factory=list)


def test_yaml_overrides_and_types(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("name: run\ninner:\n  lr: 3e-4\nitems:\n  - {lr: 2}\n")
    cfg = load_config(Outer, path, {"inner.betas": [0.8, 0.9], "flag": "true", "steps": "7"})
    assert cfg.name == "run" and cfg.steps == 7 and cfg.flag is True
    assert cfg.inner.lr == pytest.approx(3e-4)  # PyYAML reads 3e-4 as a string; float fields accept it
    assert cfg.inner.betas == [0.8, 0.9]
    assert isinstance(cfg.items[0], Inner) and cfg.items[0].lr == 2.0


def test_unknown_key_names_key_and_file(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("inner:\n  learning_rate: 1\n")
    with pytest.raises(UserError, match=r"c.yaml: unknown key 'inner.learning_rate'.*lr"):
        load_config(Outer, path)


def test_wrong_type_is_one_line_error():
    with pytest.raises(UserError, match="key 'steps' must be an integer"):
        load_config(Outer, None, {"steps": "many"})
    with pytest.raises(UserError, match="key 'steps' must be an integer"):
        load_config(Outer, None, {"steps": 2.5})


def test_bad_yaml_reports_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("a: 1\nb: [unclosed\n")
    with pytest.raises(UserError, match="bad.yaml: line"):
        read_yaml(path)


def test_field_docs_and_resolved_round_trip(tmp_path):
    assert field_docs(Outer)["name"] == "The name."
    assert field_docs(Inner)["lr"] == "Learning rate."
    cfg = load_config(Outer, None, {"inner.lr": 0.5})
    written = write_resolved_config(cfg, tmp_path, "demo stage")
    assert written.name == "demo_stage.config.yaml"
    assert load_config(Outer, written) == cfg


def test_parse_override():
    assert parse_override("a.b=1e-4") == ("a.b", "1e-4")
    assert parse_override("a=[1, 2]") == ("a", [1, 2])
    with pytest.raises(UserError, match="KEY=VALUE"):
        parse_override("novalue")


@dataclass
class WithSectionDefaults:
    inner: Inner = field(default_factory=lambda: Inner(lr=2e-5, betas=[0.5, 0.5]))


def test_partial_section_keeps_the_sections_own_defaults():
    cfg = load_config(WithSectionDefaults, None, {"inner.betas": [0.9, 0.99]})
    assert cfg.inner.lr == 2e-5 and cfg.inner.betas == [0.9, 0.99]
