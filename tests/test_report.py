"""The report on hand-made inputs (no store): paper tables, formatting, plots, HTML and Markdown files."""

import base64
import re
from html import escape

import numpy as np
import pandas as pd
import pytest

from tasks.analyse import report
from tasks.analyse.stats import ancova


@pytest.fixture(scope="module")
def result():
    rng = np.random.default_rng(3)
    n = 40
    data = pd.DataFrame(
        {
            "facial_group": np.repeat(["neutral", "positive"], n // 2),
            "body_group": np.tile(["expressive", "still"], n // 2),
            "pretest": rng.normal(50, 5, n),
        }
    )
    data["positive_emotion"] = 0.2 * data["pretest"] + 3 * (data["facial_group"] == "positive") + rng.normal(size=n)
    return ancova(data, "positive_emotion", ["facial_group", "body_group"], ["pretest"])


@pytest.fixture
def inputs(result) -> report.ReportInputs:
    windows = pd.DataFrame(
        {
            "video": ["a.mp4"] * 3 + ["b | c.mp4"] * 2,
            "start_time": [0.0, 2.0, 4.0, 0.0, 2.0],
            "end_time": [2.0, 4.0, 6.0, 2.0, 4.0],
            "label": ["happiness", "neutral", "surprise", "neutral", "anger"],
        }
    )
    au = pd.DataFrame({"video": ["a.mp4", "b | c.mp4"], "AU06_r": [1.5, 0.2], "AU12_r": [3.0, np.nan]})
    units = pd.DataFrame({"session_id": ["s1", "s2"], "happiness_share": [0.5, 0.1], "facial_group": ["p", "n"]})
    facts = {"store": "/tmp/<store>", "link": "session_id"}
    return report.ReportInputs("Report & <title>", facts, units, {"positive_emotion": result}, windows, au)


def test_paper_table_has_the_papers_columns_and_the_ancova_numbers(result):
    table = report.paper_table(result)
    assert list(table.columns) == ["Effect", "df", "Mean Square", "F", "p", "ηp²"]
    assert list(table["Effect"]) == [
        "Pre-test score (covariate)",
        "Facial expression",
        "Body expression",
        "Facial expression × Body expression",
        "Error",
    ]
    np.testing.assert_array_equal(table["F"], result.table["F"])
    np.testing.assert_array_equal(table["ηp²"], result.table["np2"])
    text = report.formatted_paper_table(result)
    assert text.iloc[-1].tolist()[3:] == ["", "", ""]  # the error row has no F, p or ηp²
    assert text.loc[1, "F"] == f"{result.table['F'][1]:.2f}"


@pytest.mark.parametrize(("p", "text"), [(0.0004, "<0.001"), (0.0123, "0.012"), (float("nan"), ""), (1.0, "1.000")])
def test_p_values_are_printed_as_in_the_paper(p, text):
    assert report.format_p(p) == text


def test_effect_labels_keep_unknown_names():
    assert report.effect_label("facial_group:dose") == "Facial expression × dose"


def test_markdown_tables_escape_pipes():
    table = report.markdown_table(pd.DataFrame({"a": ["x|y"], "b": [1]}))
    assert table.splitlines() == ["| a | b |", "|---|---|", "| x\\|y | 1 |"]


def test_write_report_is_self_contained_and_escaped(inputs, tmp_path):
    path = report.write_report(tmp_path / "r", inputs)
    html = path.read_text()
    assert "<title>Report &amp; &lt;title&gt;</title>" in html and "/tmp/&lt;store&gt;" in html
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 3 and all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert not re.search(r'(src|href)="(?!data:)', html)  # nothing loaded from elsewhere
    assert f"<td>{escape(report.format_p(inputs.results['positive_emotion'].table['p'][1]))}</td>" in html

    markdown = (tmp_path / "r" / "report.md").read_text()
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert sorted(linked) == ["adjusted_means_positive-emotion.png", "au_heatmap.png", "expression_timeline.png"]
    assert all((tmp_path / "r" / name).read_bytes().startswith(b"\x89PNG") for name in linked)
    ancova_csv = pd.read_csv(tmp_path / "r" / "ancova.csv")
    assert list(ancova_csv.columns[:3]) == ["outcome", "effect", "source"]


def test_report_without_windows_or_action_units_leaves_those_plots_out(inputs, tmp_path):
    empty = report.ReportInputs(
        inputs.title, inputs.facts, inputs.units, inputs.results, inputs.windows.iloc[:0], inputs.au_means.iloc[:0]
    )
    html = report.write_report(tmp_path, empty).read_text()
    assert html.count("data:image/png") == 1 and "AU heatmap" not in html
