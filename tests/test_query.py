import hashlib
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from flows.cli import main
from tasks.analyse.warehouse import QueryRefused, run_query
from tasks.store import Store


def test_a_new_store_has_empty_views_with_the_documented_columns(tmp_path):
    store = Store(tmp_path / "store").ensure()
    frames = run_query(store, "select * from frames")
    assert frames.num_rows == 0
    assert {"video_id", "frame", "timestamp", "face_id", "AU12_r", "x_67", "pose_Ry"} <= set(frames.column_names)
    assert run_query(store, "select count(*) as n from videos").to_pylist() == [{"n": 0}]
    assert "stage" in run_query(store, "select * from failures").column_names


def test_a_query_creates_only_the_marts_it_names_and_those_they_read(tmp_path):
    store = Store(tmp_path / "store").ensure()
    sql = ("select (select count(*) from expression_frames) as n, list(view_name order by view_name) as views "
           "from duckdb_views() where not internal")  # fmt: skip
    views = run_query(store, sql).to_pylist()[0]["views"]
    staging = {"body", "failures", "frames", "people", "predictions", "runs", "videos"}
    assert set(views) - staging == {"emotion_windows", "expression_frames", "expression_windows", "primary_faces"}


@pytest.fixture
def sandbox(tmp_path) -> tuple[Store, Path]:
    """A store with a catalog, a readable file outside it (which no query may read) and its content."""
    store = Store(tmp_path / "store").ensure()
    store.write_catalog("videos", pd.DataFrame([{"video_id": "v1", "path": "/lessons/a.mp4", "status": "ok"}]))
    secret = tmp_path / "secret.csv"
    secret.write_text("password\nhunter2\n")
    pd.DataFrame({"x": [1]}).to_parquet(tmp_path / "outside.parquet")
    return store, tmp_path


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


BYPASSES = [
    # the reported ones
    "explain analyze copy (select 'x' as video_id) to '{store}/catalog/videos.parquet' (format parquet)",
    "select * from read_csv('{tmp}/secret.csv')",
    "select * from read_text('{tmp}/secret.csv')",
    "select * from read_blob('{tmp}/secret.csv')",
    "select * from glob('{tmp}/*')",
    "select * from read_parquet('https://example.com/x.parquet')",
    "select * from read_parquet('s3://bucket/x.parquet')",
    # writing, attaching, installing, configuring
    "copy (select 1) to '{store}/out.csv'",
    "copy videos to '{store}/catalog/videos.parquet' (format parquet)",
    "export database '{store}/exported'",
    "attach '{store}/other.duckdb' as other",
    "install httpfs",
    "load httpfs",
    "set threads = 1",
    "reset threads",
    "set variable positive_happiness_share = 0",
    "pragma enable_profiling",
    "call pragma_version()",
    "create macro leak() as 1",
    "create secret s (type s3, key_id 'k', secret 'v')",
    "create table t as select 1",
    "drop view frames",
    "insert into videos values ('x')",
    # hidden or indirect
    "select 1; copy (select 1) to '{store}/second.csv'",
    "/* select */ copy (select 1) to '{store}/commented.csv'",
    "-- select\ncopy (select 1) to '{store}/line-comment.csv'",
    "explain copy (select 1) to '{store}/explained.csv'",
    "explain /* x */ analyze select 1",
    "select * from query('copy (select 1) to ''{store}/query.csv''')",
    "select * from read_parquet('{tmp}/outside.parquet')",
    "select * from read_csv('{store}/../secret.csv')",
]


@pytest.mark.parametrize("sql", BYPASSES)
def test_a_query_can_neither_write_nor_read_outside_the_store(sandbox, sql):
    store, tmp = sandbox
    before = snapshot(tmp)
    with pytest.raises((QueryRefused, duckdb.Error)):
        run_query(store, sql.format(store=store.root, tmp=tmp))
    assert snapshot(tmp) == before  # nothing written, changed or created, in the store or beside it


def test_selects_with_and_plain_explain_run_and_the_last_result_is_returned(sandbox):
    store, _ = sandbox
    assert run_query(store, "select 1 as a; select 2 as b").to_pylist() == [{"b": 2}]
    assert run_query(store, "with v as (select video_id from videos) select * from v").to_pylist() == [
        {"video_id": "v1"}
    ]
    assert run_query(store, "explain select * from videos").num_rows >= 1


def test_sql_errors_and_refusals_exit_2_with_one_line(sandbox, capsys):
    store, _ = sandbox
    assert main(["query", "--store", str(store.root), "select no_such_column from videos"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no_such_column" in err and "Traceback" not in err
    assert main(["query", "--store", str(store.root), "copy videos to 'x.csv'"]) == 2
    assert "read-only" in capsys.readouterr().err


def test_missing_store_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        run_query(Store(tmp_path / "nope"), "select 1")
