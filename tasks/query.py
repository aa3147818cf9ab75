"""DuckDB over the store: the staging views of ``sql/staging`` and read-only ad-hoc SQL.

Each ``sql/staging/<name>.sql`` defines view ``<name>`` over Parquet under ``${store}``. A table with no
file yet (a new store) becomes an empty view with the documented schema, so queries never fail just
because nothing has been extracted.
"""

import re
from pathlib import Path

import duckdb
import pyarrow as pa

from tasks.store import BODY_SCHEMA, CATALOG_TABLES, FRAME_SCHEMA, Store, empty_frame

SQL_DIR = Path(__file__).resolve().parents[1] / "sql"
READ_ONLY_STATEMENTS = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}
_SOURCE = re.compile(r"read_parquet\('\$\{store\}/([^']+)'")


class QueryRefused(ValueError):
    """An ad-hoc statement that would write, attach, install or change settings."""


def sql_literal(text: str) -> str:
    return text.replace("'", "''")


def _empty(name: str) -> pa.Table:
    video_id = pa.field("video_id", pa.string())
    if name == "frames":
        return pa.schema([video_id, *FRAME_SCHEMA]).empty_table()
    if name == "body":
        return pa.schema([video_id, *BODY_SCHEMA]).empty_table()
    if name == "predictions":
        from models.registry import TASK_CLASSES
        from tasks.inference import prediction_schema

        keys = [pa.field("task", pa.string()), pa.field("model_version", pa.string()), video_id]
        fields = {f.name: f for task in TASK_CLASSES for f in prediction_schema(task)}
        return pa.schema([*keys, *fields.values()]).empty_table()
    return pa.Table.from_pandas(empty_frame(CATALOG_TABLES[name]), preserve_index=False)


def connect(store: Store | str) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with one view per staging SQL file over ``store``."""
    store = store if isinstance(store, Store) else Store(store)
    if not store.root.is_dir():
        raise FileNotFoundError(f"store {store.root} does not exist (run `lessonlens run` first)")
    con = duckdb.connect()
    for path in sorted((SQL_DIR / "staging").glob("*.sql")):
        text = path.read_text()
        globs = _SOURCE.findall(text)
        if all(any(store.root.glob(g)) for g in globs):
            con.execute(text.replace("${store}", sql_literal(str(store.root))))
        else:
            con.register(path.stem, _empty(path.stem))
    return con


def check_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    for statement in con.extract_statements(sql):
        if statement.type not in READ_ONLY_STATEMENTS:
            kind = statement.type.name.lower()
            raise QueryRefused(
                f"refused: `lessonlens query` is read-only, and this is a {kind} statement: "
                f"{statement.query.strip()[:80]!r}. Use SELECT (or EXPLAIN) over the views."
            )


def run_query(store: Store | str, sql: str) -> pa.Table:
    """Run read-only ``sql`` over the store's staging views and marts; anything but SELECT/EXPLAIN is refused."""
    from tasks.marts import connect as connect_with_marts  # marts build on this module's views

    con = connect_with_marts(store)
    check_read_only(con, sql)
    statements = con.extract_statements(sql)
    for statement in statements[:-1]:
        con.execute(statement)
    return con.sql(statements[-1].query).to_arrow_table()
