"""The report as files: what report.html and report.md hold, and that nothing in a run can inject markup.

The rendering is checked through the stdlib HTML parser here;
``test_report_browser.py`` opens the same kind of report in a real browser.
"""
from __future__ import annotations

import dataclasses
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from harness import baselines
from harness.report import ReportError, charts, render_reports
from harness.report.render import MARKDOWN_LIMIT, md_escape, md_pre
from harness.report.tables import pct
from harness.run_end import reanalyse
from harness.scoring.record import RunAnalysis
from tests.run_fixtures import BACKENDS, RunSpec, end_run, load_run, write_cache, write_run

HOSTILE_NAME = "<script>alert(1)</script>"
HOSTILE_REASON = "needs <img src=x onerror=alert(2)> and a | pipe"
HOSTILE_LOG = "Traceback (most recent call last):\n<script>alert(3)</script>\n</pre><b>bold</b>\n*not emphasis*"


class Tables(HTMLParser):
    """Text of every table cell, by the table's id: ``{id: [[cell, ...], ...]}``; and every tag seen."""

    def __init__(self, html: str):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.tags: list[tuple[str, dict]] = []
        self._table: str | None = None
        self._cell: list[str] | None = None
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "table":
            self._table = attrs.get("id") or f"table-{len(self.tables)}"
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("td", "th") and self._cell is not None and self._table:
            self.tables[self._table][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def make_report(tmp_path: Path, spec: RunSpec | None = None, *, cache: bool = True,
                method: str = "seed", baseline: Path | None = None) -> tuple[dict, str, str]:
    spec = spec or RunSpec()
    folder = write_run(tmp_path, spec)
    if cache:
        write_cache(tmp_path, spec)
    analysis = reanalyse(folder, method)
    paths = end_run(analysis, folder, tmp_path / "out", baseline=baseline)
    return analysis.to_json(), paths[0].read_text(), paths[1].read_text()


@pytest.fixture(scope="module")
def healthy(tmp_path_factory):
    root = tmp_path_factory.mktemp("healthy")
    baseline_path = root / "smoke.json"
    analysis = reanalyse(write_run(root / "pre"))
    baselines.record(baseline_path, "smoke", analysis)
    return make_report(root, baseline=baseline_path)


# -- files --------------------------------------------------------------------------------
def test_reports_go_to_the_run_folder_and_a_copy_per_run(tmp_path: Path) -> None:
    folder = write_run(tmp_path)
    paths = end_run(reanalyse(folder), folder, tmp_path / "out")
    assert paths == [folder / "report.html", folder / "report.md",
                     tmp_path / "out" / "synthetic1" / "report.html",
                     tmp_path / "out" / "synthetic1" / "report.md"]
    assert paths[0].read_bytes() == paths[2].read_bytes()


def test_an_analysis_of_another_schema_is_refused_with_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ReportError, match="schema 1.*kbench report"):
        render_reports(RunAnalysis(run_id="x", method="seed", schema=1))


# -- the HTML ---------------------------------------------------------------------------------
def test_the_html_is_self_contained(healthy) -> None:
    _, html, _ = healthy
    parsed = Tables(html)
    assert not [t for t, _ in parsed.tags if t in ("script", "link", "iframe", "object")]
    sources = [a.get("src", "") for t, a in parsed.tags if t == "img"]
    assert sources and all(s.startswith("data:image/png;base64,") for s in sources)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)


def test_the_results_table_holds_the_runs_numbers(healthy) -> None:
    analysis, html, _ = healthy
    rows = {row[0].rstrip(" ★"): row for row in Tables(html).tables["results-table"][1:]}
    assert set(rows) == set(BACKENDS)
    for name, member in analysis["members"].items():
        assert pct(member["train_accuracy"]) in rows[name]
        assert pct(member["test"]["accuracy"]) in rows[name]
        assert f"{member['test']['ece']:.3f}" in rows[name]
        assert f"{member['test']['nll']:.3f}" in rows[name]
    header = Tables(html).tables["results-table"][0]
    assert "Train img/s (in job, shared)" in header and "Infer img/s (in job, shared)" in header
    assert not any("MFU" in column for column in header), "utilisation comes only from the speed phase"
    assert "40.0 MFLOP per image to infer" in html


def test_every_variant_is_shown_side_by_side_with_the_recommendation(healthy) -> None:
    analysis, html, _ = healthy
    rows = {row[0].split(" ")[0].replace("recommended", "").replace("checked", ""): row
            for row in Tables(html).tables["variants-table"][1:]}
    assert set(rows) == set(analysis["variants"])
    for name, variant in analysis["variants"].items():
        assert pct(variant["test"]["accuracy"]) in rows[name]
        assert f"{variant['test']['ece']:.3f}" in rows[name]
        assert f"{variant['test']['brier']:.3f}" in rows[name]
        if variant["temperature"] is not None:
            assert f"{variant['temperature']:.3f}" in rows[name]
    recommended = analysis["recommendation"]["variant"]
    assert f"Recommended: {recommended}." in html
    weights = Tables(html).tables["weights-table"]
    assert weights[0][:5] == ["Backend", "w (seed)", "w (uniform)", "w (val-accuracy)", "w (fitted)"]


def test_the_per_image_table_follows_the_seed(healthy) -> None:
    analysis, html, _ = healthy
    rows = Tables(html).tables["per-image-table"]
    first = analysis["table"]
    assert rows[1][0] == "1"
    first_image = rows[1]  # image number, picture, the first backend, its ten classes
    assert first_image[2].startswith("tensorflow w ") and len(first_image) == 13
    p, share = first["members"]["tensorflow"][0][0], first["contributions"]["tensorflow"][0][0]
    assert first_image[3] == f"{100 * p:.3f}%{100 * share:.2f}%"  # p_i, then its share w_i p_i
    answer = next(r for r in rows if r[0].startswith("answer:"))
    assert answer[0].startswith(f"answer: {first['labels'][0]} ")
    assert answer[1] == f"{100 * first['ensemble'][0][0]:.3f}%"


def test_the_gap_to_the_best_member_and_the_baselines_are_plain(healthy) -> None:
    _, html, markdown = healthy
    assert 'id="gap-verdict"' in html and "its best member" in html
    verdicts = Tables(html).tables["baseline-table"]
    assert [r[1] for r in verdicts[1:]] == ["pass"] * (len(BACKENDS) + 1)
    assert "✅" in markdown


def test_thumbnails_come_from_the_data_cache(healthy, tmp_path: Path) -> None:
    analysis, html, _ = healthy
    shown = len(re.findall(r'<img class="thumb"', html))
    assert shown >= len(analysis["table"]["indices"])
    _, without, _ = make_report(tmp_path, cache=False)
    assert '<img class="thumb"' not in without
    assert "images are unavailable: the data cache" in without and "is not on this machine" in without


def test_the_charts_are_drawn(healthy) -> None:
    _, html, _ = healthy
    for alt in ("Test accuracy per backend", "Learning curves", "Time per epoch and throughput",
                "Reliability diagrams before and after", "Confusion matrix of the ensemble"):
        assert f'alt="{alt}' in html


# -- the markdown -----------------------------------------------------------------------------
def test_the_markdown_has_the_tables_and_fits_a_job_summary(healthy) -> None:
    analysis, _, markdown = healthy
    assert len(markdown.encode()) < MARKDOWN_LIMIT
    assert "| Backend | State | Train acc. |" in markdown
    for name, member in analysis["members"].items():
        assert re.search(rf"^\| {name}( ★)? \| ok \| {re.escape(pct(member['train_accuracy']))} ", markdown, re.MULTILINE)
    assert f"**Recommended: {analysis['recommendation']['variant']}.**" in markdown
    tables = markdown_tables(markdown)
    assert len(tables) >= 7
    for table in tables:  # every row has the header's number of cells
        assert {len(row) for row in table} == {len(table[0])}, table[0]


def markdown_tables(markdown: str) -> list[list[list[str]]]:
    """The GitHub-flavoured tables of a markdown text, as rows of cells (escaped pipes kept in cells)."""
    tables, current = [], []
    for line in [*markdown.splitlines(), ""]:
        if line.startswith("|"):
            current.append([c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]])
        elif current:
            tables.append(current)
            current = []
    return tables


def test_a_long_per_image_table_is_cut_to_fit(tmp_path: Path) -> None:
    spec = RunSpec(n_test=200)
    folder = write_run(tmp_path, spec)
    from harness.scoring.analysis import analyse
    analysis = analyse(load_run(folder), table_images=200)
    analysis.settings, analysis.statuses = load_run(folder).settings, {}
    markdown = render_reports(analysis)["md"].decode()
    assert len(markdown.encode()) <= MARKDOWN_LIMIT
    assert re.search(r"The first (\d+) of 200 tabulated test images", markdown)
    assert "|answer:" in markdown


# -- runs that went wrong ------------------------------------------------------------------------
def test_a_failed_and_a_skipped_backend_are_named_with_their_reasons(tmp_path: Path) -> None:
    spec = RunSpec(failed={"jax": "Traceback (most recent call last):\nMemoryError: out of memory"},
                   skipped={"cntk": "CNTK needs Python 3.6, which this machine lacks"})
    _, html, markdown = make_report(tmp_path, spec)
    rows = {row[0]: row for row in Tables(html).tables["left-out-table"][1:]}
    assert rows["jax"][1] == "failed" and "jax/train failed" in rows["jax"][2]
    assert rows["cntk"][1] == "skipped" and "CNTK needs Python 3.6" in rows["cntk"][2]
    assert "MemoryError: out of memory" in html
    assert "- **cntk** (skipped): CNTK needs Python 3.6, which this machine lacks" in markdown
    assert "MemoryError: out of memory" in markdown
    assert "3 of 5 backends finished; left out: jax (failed), cntk (skipped)." in html


def test_a_run_where_nothing_finished_still_gets_a_report(tmp_path: Path) -> None:
    spec = RunSpec(backends=("tensorflow", "torch"), failed={"tensorflow": "boom"},
                   skipped={"torch": "torch is not installed"})
    _, html, markdown = make_report(tmp_path, spec)
    assert "No backend finished, so there is no ensemble." in html
    assert "torch is not installed" in markdown


def test_a_seed_faithful_run_says_so(tmp_path: Path) -> None:
    _, html, markdown = make_report(tmp_path, RunSpec(n_val=0))
    assert 'id="seed-faithful"' in html
    assert "Seed-faithful run" in markdown and "not available" in markdown
    rows = {row[0]: row for row in Tables(html).tables["variants-table"][1:]}
    assert rows["fitted+T"][2].startswith("unavailable: needs a validation split")


def test_nothing_from_a_run_can_inject_markup(tmp_path: Path) -> None:
    spec = RunSpec(backends=(*BACKENDS, HOSTILE_NAME), failed={"jax": HOSTILE_LOG},
                   skipped={HOSTILE_NAME: HOSTILE_REASON})
    analysis, html, markdown = make_report(tmp_path, spec)
    assert analysis["members"][HOSTILE_NAME]["reason"] == HOSTILE_REASON
    parsed = Tables(html)
    assert not [t for t, _ in parsed.tags if t in ("script", "b")]
    assert not [a for t, a in parsed.tags if t == "img" and a.get("src") == "x"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in html
    assert "&lt;/pre&gt;&lt;b&gt;bold&lt;/b&gt;" in html
    for raw in ("<script", "<img", "<b>", "</pre><b>"):
        assert raw not in markdown
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in markdown
    assert "a \\| pipe" in markdown
    for table in markdown_tables(markdown):
        assert {len(row) for row in table} == {len(table[0])}, table[0]
    assert "<pre>Traceback (most recent call last):\n&lt;script&gt;alert(3)&lt;/script&gt;" in markdown


def test_history_shows_the_trend_and_unreadable_lines(tmp_path: Path) -> None:
    spec = RunSpec()
    folder = write_run(tmp_path, spec)
    for run_id in ("nightly-1", "nightly-2"):
        end_run(dataclasses.replace(reanalyse(folder), run_id=run_id), folder)
    with open(tmp_path / "history" / "smoke.jsonl", "a") as handle:
        handle.write("garbage\n")
    end_run(reanalyse(folder), folder)
    html = (folder / "report.html").read_text()
    assert 'alt="Accuracy and throughput across runs"' in html
    rows = Tables(html).tables["history-table"][1:]
    assert [r[0] for r in rows] == ["synthetic1", "nightly-2", "nightly-1"]
    assert "skipped 1 of the 4 lines" in html and "1 are not valid JSON" in html and "at line 3" in html


@pytest.mark.parametrize(("better", "phrase"), [
    ({"accuracy": True, "nll": True, "ece": True}, "is better on all three: accuracy, NLL and ECE"),
    ({"accuracy": False, "nll": True, "ece": True}, "is better on NLL and ECE, not on accuracy"),
    ({"accuracy": True, "nll": False, "ece": False}, "is better on accuracy, not on NLL and ECE"),
    ({"accuracy": False, "nll": False, "ece": False}, "is better on none of accuracy, NLL and ECE"),
])
def test_the_comparison_with_the_best_backend_reads_plainly(better, phrase) -> None:
    from harness.report.tables import _beats
    assert _beats(better) == phrase


# -- escaping helpers --------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "escaped"), [
    ("tensorflow", "tensorflow"),
    ("a|b", "a\\|b"),
    ("<script>x</script>", "&lt;script&gt;x&lt;/script&gt;"),
    ("[link](http://x)", "\\[link\\](http://x)"),
    ("*bold* _it_ `code` # ~x~ !", "\\*bold\\* \\_it\\_ \\`code\\` \\# \\~x\\~ \\!"),
    ("two\nlines", "two lines"),
    ("a & b", "a &amp; b"),
    ("back\\slash", "back\\\\slash"),
    (None, ""),
])
def test_markdown_escaping(text, escaped) -> None:
    assert md_escape(text) == escaped


def test_preformatted_markdown_escapes_html() -> None:
    assert md_pre("x </pre><script>") == "<pre>x &lt;/pre&gt;&lt;script&gt;</pre>"


def test_a_history_of_training_only_runs_draws_throughput_without_an_empty_legend() -> None:
    """Runs of ``-k test_train`` have throughput but no test accuracy; warnings are errors here."""
    runs = ["nightly-1", "nightly-2"]
    drawn = charts.history(runs, accuracy={"tensorflow": [None, None]},
                           throughput={"tensorflow": [300.0, 310.0]}, colour={})
    assert drawn is not None and drawn.startswith("data:image/png;base64,")


def test_a_history_with_nothing_measured_draws_no_chart() -> None:
    assert charts.history(["a", "b"], accuracy={"jax": [None, None]}, throughput={"jax": [None, None]},
                          colour={}) is None


# -- same model on every backend ---------------------------------------------------------------
def test_the_fidelity_matrix_shows_every_pair_and_passes_a_healthy_run(healthy) -> None:
    analysis, html, markdown = healthy
    matrix = Tables(html).tables["fidelity-table"]
    assert matrix[0][1:] == sorted(BACKENDS)
    cells = analysis["fidelity"]["cells"]
    for row in matrix[1:]:
        for other, text in zip(matrix[0][1:], row[1:], strict=True):
            if other == row[0]:
                assert text == "–"
            else:
                assert text == f"{cells[row[0]][other]['max_abs_dp']:.1e} / 100.0%"
    assert "Every backend computes the same function within tolerance." in html
    assert "first 50 test images" in html
    assert "✅ Every backend computes the same function within tolerance." in markdown


def test_a_backend_with_another_forward_pass_is_named_in_both_reports(tmp_path: Path) -> None:
    analysis, html, markdown = make_report(tmp_path, RunSpec(fidelity_broken=("torch",)), cache=False)
    assert list(analysis["fidelity"]["named"]) == ["torch"]
    why = analysis["fidelity"]["named"]["torch"]
    assert "torch's forward pass differs from 4 of 4 other backend(s)" in why
    assert why.replace("'", "&#39;") in html
    assert "fail" in html.split('id="fidelity-table"')[1].split("</table>")[0]
    assert "- ❌ " + md_escape(why) in markdown


def test_a_run_with_one_checked_backend_says_why_there_is_no_matrix(tmp_path: Path) -> None:
    spec = RunSpec(backends=("tensorflow", "torch"), failed={"torch": "boom"})
    _, html, markdown = make_report(tmp_path, spec, cache=False)
    assert "No fidelity matrix: 1 backend(s) ran the fidelity check; it compares two or more." in html
    assert "torch/fidelity skipped: not run because train failed" in html
    assert "No fidelity matrix: 1 backend(s) ran the fidelity check" in markdown


def test_both_training_accuracies_are_shown_and_the_weights_use_the_comparable_one(tmp_path: Path) -> None:
    final = {"train_accuracy": 0.605, "train_loss": 1.506, "train_accuracy_inference": 0.43,
             "train_loss_inference": 1.52, "train_inference_sample": {"images": 2000, "of": 5000, "seed": 7}}
    analysis, html, markdown = make_report(tmp_path, RunSpec(extra_train={"cntk": {"final": final}}), cache=False)
    rows = {row[0]: row for row in Tables(html).tables["train-accuracy-table"][1:]}
    assert rows["cntk"][1:] == ["60.5%", "1.506", "43.0%", "1.520", "+17.5 pts", "2000 of 5000", "inference"]
    assert rows["jax"][3] == "–" and rows["jax"][-1] == "Keras's"
    member = analysis["members"]["cntk"]
    assert member["train_accuracy_inference"] == 0.43 and member["seed_weight_figure"] == "inference"
    seed = analysis["variants"]["seed"]["weights"]
    kerases = {n: m["train_accuracy"] for n, m in analysis["members"].items() if n != "cntk"}
    total = sum(kerases.values()) + 0.43
    assert seed["cntk"] == pytest.approx(0.43 / total)
    assert "The seed&#39;s weights use it wherever the job measured it." in html or \
        "The seed's weights use it wherever the job measured it." in html
    assert "Training accuracy, two ways." in markdown


def test_the_one_step_check_shows_every_pair(healthy) -> None:
    analysis, html, markdown = healthy
    step = analysis["fidelity"]["step"]
    assert step["available"] and step["passed"] and step["reference_weights"] == BACKENDS[0]
    rows = Tables(html).tables["step-table"][1:]
    assert len(rows) == len(BACKENDS) * (len(BACKENDS) - 1) // 2
    assert all(row[-1] == "pass" for row in rows)
    assert f"One training step from {BACKENDS[0]}" in markdown
