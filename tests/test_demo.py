"""`lessonlens demo` on a fresh store: generated clips, the pipeline, made-up outcomes, the analysis, a report."""

import base64
import re

import pytest

from flows.cli import DEMO_EMOTION_STREAM, main
from tasks.analyse.warehouse import run_query
from tasks.store import Store


@pytest.mark.slow
def test_the_demo_ends_with_a_report_of_its_synthetic_outcomes(tmp_path, prefect_api, capsys):
    corpus, store = tmp_path / "corpus", tmp_path / "store"
    assert main(["demo", "--corpus", str(corpus), "--store", str(store), "--workers", "2"]) == 0
    out = capsys.readouterr().out
    report = out.rsplit("report: ", 1)[1].strip()
    html = open(report).read()
    assert "synthetic" in out and (corpus / "SYNTHETIC_outcomes.csv").is_file()
    # the teachers differ in what the analysis measures: the teacher who breaks into a smile is 'positive' by the
    # stream the demo analyses (the AU rules, relative to each face's own neutral level)
    assert "grouped by the emotion_rules stream" in out
    sql = "select session_id, facial_group from session_analysis order by 1"
    groups = run_query(Store(store), sql, emotion_stream=DEMO_EMOTION_STREAM).to_pylist()
    assert groups == [
        {"session_id": "s01", "facial_group": "positive"},
        {"session_id": "s02", "facial_group": "neutral"},
    ]
    assert "Facial expression" in html and "classroom_performance" in html
    plots = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert plots and all(base64.b64decode(p)[:8] == b"\x89PNG\r\n\x1a\n" for p in plots)
