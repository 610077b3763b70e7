"""Class names in any script render in the report's charts without a single warning.

Before: a class folder named in Japanese made matplotlib warn about missing
glyphs, the session turned the warning into an error and the report was lost.
"""
from __future__ import annotations

import warnings

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.report import charts, labels

HOSTILE = ["猫", "犬と鳥", "🚗 car", "$\\frac{a}{b}$", "a$b", "<b>bold</b>", "x" * 200, "tab\there\nnewline",
           "العربية", "\u200b", "deer"]


def confusion_of(names):
    k = len(names)
    return [[5 if i == j else 1 for j in range(k)] for i in range(k)]


def test_a_confusion_matrix_of_hostile_class_names_draws_with_warnings_as_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        uri = charts.confusion(confusion_of(HOSTILE), HOSTILE, "ensemble (seed) on the test set")
    assert uri.startswith("data:image/png;base64,")


def test_every_label_drawn_has_all_its_glyphs_in_the_font_chosen():
    drawn, family = labels.drawable(HOSTILE)
    path = labels.font_manager.findfont(family, fallback_to_default=False)
    assert all(labels.covers(path, label) for label in drawn)
    assert drawn[-1] == "deer", "a name the font can draw is drawn as it is"
    assert all(len(label) <= labels.MAX_CHARS for label in drawn)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.text(min_size=1, max_size=30), min_size=2, max_size=6))
def test_fuzz_any_class_names_draw_without_warnings(names):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        drawn, _family = labels.drawable(names)
        assert len(drawn) == len(names)
        assert charts.confusion(confusion_of(names), names, "t").startswith("data:image/png")


def test_a_history_of_odd_run_ids_draws_with_warnings_as_errors():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        uri = charts.history(["$\\x", "夜間-1", "ok"], {"jax": [0.3, 0.4, 0.5]}, {"jax": [100.0, 110.0, 120.0]},
                             {"jax": "#000000"})
    assert uri and uri.startswith("data:image/png")


@pytest.mark.parametrize("name", ["猫", "🚗"])
def test_a_name_no_installed_font_can_draw_becomes_its_class_number(name, monkeypatch):
    only_default = [(labels.DEFAULT_FAMILY, labels.font_manager.findfont(labels.DEFAULT_FAMILY))]
    monkeypatch.setattr(labels, "_fonts", lambda: only_default)  # as on a machine without a CJK font
    drawn, family = labels.drawable(["deer", name])
    assert drawn == ["deer", "class 1"] and family == labels.DEFAULT_FAMILY


def test_a_run_with_japanese_class_names_gets_its_report(tmp_path):
    """The whole path from the run folder, with every warning an error (the suite's setting)."""
    import json

    from harness import cli
    from tests.run_fixtures import CLASSES, RunSpec, write_run

    names = ["飛行機", "自動車", "鳥", "猫", "鹿", "犬", "蛙", "馬", "船", "トラック"]
    assert len(names) == len(CLASSES)
    run_dir = write_run(tmp_path, RunSpec(backends=("tensorflow", "jax")))
    for path in run_dir.glob("*/*.json"):
        result = json.loads(path.read_text())
        if "data" in result:
            result["data"]["classes"] = names
            path.write_text(json.dumps(result, ensure_ascii=False))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert cli.main(["report", str(run_dir), "--reports-dir", str(tmp_path / "out")]) == 0
    assert "トラック" in (run_dir / "report.html").read_text(encoding="utf-8")
