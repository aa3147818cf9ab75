import pytest

from tasks.store import Store
from tasks.warehouse import QueryRefused, run_query


def test_a_new_store_has_empty_views_with_the_documented_columns(tmp_path):
    store = Store(tmp_path / "store").ensure()
    frames = run_query(store, "select * from frames")
    assert frames.num_rows == 0
    assert {"video_id", "frame", "timestamp", "face_id", "AU12_r", "x_67", "pose_Ry"} <= set(frames.column_names)
    assert run_query(store, "select count(*) as n from videos").to_pylist() == [{"n": 0}]
    assert "stage" in run_query(store, "select * from failures").column_names


@pytest.mark.parametrize(
    "sql",
    [
        "copy (select 1) to 'out.csv'",
        "attach 'other.duckdb'",
        "install httpfs",
        "create table t as select 1",
        "select 1; drop view frames",
        "set threads = 1",
    ],
)
def test_statements_that_write_attach_install_or_configure_are_refused(tmp_path, sql):
    store = Store(tmp_path / "store").ensure()
    with pytest.raises(QueryRefused, match="read-only"):
        run_query(store, sql)
    assert not (tmp_path / "out.csv").exists()


def test_missing_store_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        run_query(Store(tmp_path / "nope"), "select 1")
