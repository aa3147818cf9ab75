"""DuckDB over a store: the staging views of ``sql/staging``, the marts of ``sql/marts`` and read-only SQL.

Every DuckDB connection of LessonLens comes from :func:`connect`. The SQL files ship inside the ``sql``
package and are read through it (``importlib.resources``), so an installed wheel finds them.

Staging: each ``sql/staging/<name>.sql`` defines view ``<name>`` over Parquet under ``${store}``. A table
with no file yet (a new store) becomes an empty view with the documented schema, so queries never fail
just because nothing has been extracted.

Macros: ``sql/macros/*.sql`` define DuckDB macros the marts share (the design's group definitions).

Marts: each ``sql/marts/<name>.sql`` defines view ``<name>`` from the staging views (``videos``,
``frames``, ``body``, ``predictions``) and other marts. Its header states ``-- grain:``, ``-- keys:`` and
``-- depends:``; :func:`mart_files` orders the files so that every view is created after those it reads.

Which emotion stream the expression marts read is the DuckDB variable ``emotion_stream`` (``emotion``, the
default stream: a promoted model or face-api.js's expression net; or ``emotion_rules``, the AU rules), set by
:func:`connect`'s ``emotion_stream``; ``expression_windows`` says it in its ``emotion_stream`` column.

Thresholds are DuckDB variables (``set variable name = value``) that the marts read with
``getvariable('name')`` when they are queried, so changing one changes the marts at once:

==============================  =======  ===================================================================
name                            default  meaning
==============================  =======  ===================================================================
``positive_happiness_share``    0.25     facial group 'positive' when at least this share of the expression
                                         window time is labelled happiness, else 'neutral'
``expressive_gesture_rate``     6.0      body group 'expressive' at this many gestures per minute or more,
                                         else 'still'
``gesture_min_speed``           0.5      a body sample is moving when a wrist moved at least this many
                                         shoulder widths per second since the previous sample
``keypoint_min_visibility``     0.5      BlazePose visibility a wrist and both shoulders need to count
``expressive_gesture_share``    0.3      body group 'expressive' when a gesture model's windows label at least
                                         this share of the body samples with an expressive gesture (our
                                         choice: paper 1 gives none), else 'still'; used instead of
                                         ``expressive_gesture_rate`` where gesture predictions exist
==============================  =======  ===================================================================
"""

import graphlib
import math
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib.resources import files
from importlib.resources.abc import Traversable

import duckdb
import pyarrow as pa

from models.rules import EMOTION_STREAMS, TASK_CLASSES
from tasks.store import BODY_SCHEMA, CATALOG_TABLES, FRAME_SCHEMA, Store, empty_frame, prediction_schema

SQL = files("sql")
STAGING_VIEWS = ("videos", "frames", "body", "predictions", "people")
_SOURCE = re.compile(r"read_parquet\('\$\{store\}/([^']+)'")
_GLOB_CHARACTER = re.compile(r"[][*?{}]")
PIVOT_WORDS = frozenset({"pivot", "pivot_wider", "unpivot", "pivot_longer"})
_HEADER = re.compile(r"^--\s*(grain|keys|depends):\s*(.*)$")


def sql_files(folder: str) -> list[Traversable]:
    """The ``*.sql`` files of ``sql/<folder>``, sorted by name."""
    return sorted((p for p in SQL.joinpath(folder).iterdir() if p.name.endswith(".sql")), key=lambda p: p.name)


@dataclass(frozen=True)
class Threshold:
    """A DuckDB variable the marts read with ``getvariable``."""

    name: str
    default: float
    meaning: str


THRESHOLDS: dict[str, Threshold] = {
    t.name: t
    for t in (
        Threshold("positive_happiness_share", 0.25, "facial group 'positive' at this happiness share+"),
        Threshold("expressive_gesture_rate", 6.0, "body group 'expressive' at this many gestures/min+"),
        Threshold("gesture_min_speed", 0.5, "moving: wrist speed in shoulder widths per second, at least"),
        Threshold("keypoint_min_visibility", 0.5, "visibility a wrist and both shoulders need to count"),
        Threshold("expressive_gesture_share", 0.3, "body group 'expressive' at this gesture-model share+"),
    )
}


@dataclass(frozen=True)
class MartFile:
    """One mart: its view name, SQL file and the grain, keys and dependencies its header states."""

    name: str
    path: Traversable
    grain: str
    keys: tuple[str, ...]
    depends: tuple[str, ...]


def read_mart(path: Traversable) -> MartFile:
    """Parse the ``-- grain:``, ``-- keys:`` and ``-- depends:`` header lines of a mart file."""
    header: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if not line.startswith("--"):
            break
        match = _HEADER.match(line)
        if match:
            header[match.group(1)] = match.group(2).strip()
    missing = [k for k in ("grain", "keys", "depends") if not header.get(k)]
    if missing:
        raise ValueError(f"{path}: the header lacks {missing} (each mart states grain, keys and depends)")
    return MartFile(
        name=path.name.removesuffix(".sql"),
        path=path,
        grain=header["grain"],
        keys=_names(header["keys"]),
        depends=_names(header["depends"]),
    )


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def mart_files() -> list[MartFile]:
    """The marts of ``sql/marts`` in creation order (every mart after the views it depends on)."""
    marts = {m.name: m for m in map(read_mart, sql_files("marts"))}
    for mart in marts.values():
        unknown = [d for d in mart.depends if d not in marts and d not in STAGING_VIEWS]
        if unknown:
            raise ValueError(f"{mart.path}: depends on {unknown}, which are neither marts nor staging views")
    graph = {m.name: [d for d in m.depends if d in marts] for m in marts.values()}
    try:
        order = list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as err:
        raise ValueError(f"marts depend on each other in a cycle: {err.args[1]}") from err
    return [marts[name] for name in order]


def parse_thresholds(items: Iterable[str] | None) -> dict[str, float]:
    """``["name=value", ...]`` (the CLI's ``--threshold``) as a dict; names and numbers are checked."""
    parsed: dict[str, float] = {}
    for item in items or ():
        name, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"threshold {item!r} is not name=value")
        try:
            parsed[name.strip()] = float(value)
        except ValueError:
            raise ValueError(f"threshold {name.strip()!r}: {value!r} is not a number") from None
    return resolve_thresholds(parsed)


def resolve_thresholds(overrides: Mapping[str, float] | None = None) -> dict[str, float]:
    """Every threshold: its default unless ``overrides`` sets it; unknown names, non-finite values raise."""
    values = {name: t.default for name, t in THRESHOLDS.items()}
    for name, value in (overrides or {}).items():
        if name not in THRESHOLDS:
            raise ValueError(f"unknown threshold {name!r}; valid: {sorted(THRESHOLDS)}")
        if not math.isfinite(float(value)):
            raise ValueError(f"threshold {name!r} must be a finite number, got {value!r}")
        values[name] = float(value)
    return values


def set_thresholds(con: duckdb.DuckDBPyConnection, thresholds: Mapping[str, float] | None = None) -> None:
    """Set every threshold variable on ``con`` (defaults for those not in ``thresholds``)."""
    for name, value in resolve_thresholds(thresholds).items():
        con.execute(f"set variable {name} = {value!r}::double")


def needed_marts(names: Iterable[str]) -> set[str]:
    """The marts among ``names`` and every mart they depend on, directly or not."""
    marts = {m.name: m for m in mart_files()}
    needed: set[str] = set()
    todo = [n for n in names if n in marts]
    while todo:
        name = todo.pop()
        if name not in needed:
            needed.add(name)
            todo += [d for d in marts[name].depends if d in marts]
    return needed


QUERYABLE = ("catalog", "frames", "body", "predictions")  # the store's folders the staging views read (sql/staging)


def default_memory_limit() -> str:
    """DuckDB's memory limit on our connections unless set: a quarter of the machine's memory (DuckDB's own
    default, 80 %, lets one runaway statement take the machine)."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):  # no sysconf: a fixed bound
        ram = 8 << 30
    return f"{max(ram // 4 >> 20, 64)}MiB"


def staging_sql(store: Store, text: str) -> str | None:
    """A staging view's SQL over ``store``; None when one of its sources has no file yet.

    A store path with a glob character (``lessons [2024]``, ``a*b``) cannot go into a ``read_parquet`` glob,
    and DuckDB checks the pattern itself against the allowed directories (an escaped pattern is outside them):
    the view then reads the list of the files found, each a literal path."""
    literal = not _GLOB_CHARACTER.search(store.url)
    lists = {}
    for pattern in _SOURCE.findall(text):
        if literal:
            if not any(store.root.glob(pattern)):
                return None
            continue
        found = sorted(p.relative_to(store.root).as_posix() for p in store.root.glob(pattern))
        if not found:
            return None
        lists[pattern] = ", ".join(f"'{sql_literal(store.url)}/{sql_literal(name)}'" for name in found)
    if literal:
        return text.replace("${store}", sql_literal(store.url))
    return _SOURCE.sub(lambda m: f"read_parquet([{lists[m.group(1)]}]", text)


def check_emotion_stream(stream: str) -> str:
    """``stream`` if it is one of :data:`EMOTION_STREAMS`; ValueError naming the parameter otherwise."""
    if stream not in EMOTION_STREAMS:
        raise ValueError(f"emotion stream {stream!r} is not one of {', '.join(EMOTION_STREAMS)}")
    return stream


def connect(
    store: Store, thresholds: Mapping[str, float] | None = None, marts: Iterable[str] | None = None,
    memory_limit: str | None = None, emotion_stream: str = "emotion",
) -> duckdb.DuckDBPyConnection:  # fmt: skip
    """An in-memory DuckDB connection with the staging views over ``store``, the threshold variables, the
    ``emotion_stream`` the expression marts read and every mart as a view (``marts``: only those and the marts
    they depend on), sandboxed by DuckDB itself (the connection of ``query``, the marts and ``analyse``):

    - file access only to the store's tables the views read (:data:`QUERYABLE`: ``allowed_directories`` +
      ``enable_external_access=false``): no other file, no URL, can be read or written, and inside the store
      neither the face crops, nor the face descriptors (``tasks.extract.linking``), nor the reports. A store on
      object storage is read through the store's own fsspec filesystem registered on the connection
      (``register_filesystem``; no DuckDB extension is downloaded or loaded), and its URL prefixes are the only
      allowed directories: another bucket or prefix is refused by DuckDB like any other path;
    - extensions are never installed or loaded automatically (a URL cannot pull one in);
    - no temporary directory (``temp_directory = ''``): DuckDB would otherwise add ``<cwd>/.tmp/`` to the
      allowed directories, so the allowed list is exactly the store's tables; nothing spills to disk, and
    - ``memory_limit`` (default :func:`default_memory_limit`, a quarter of the machine's memory) stops a
      runaway statement with an error;
    - ``lock_configuration=true`` once the views exist, so no statement can undo the above.

    The store's path with glob characters never goes into the views' ``read_parquet`` globs
    (:func:`staging_sql`): a store named ``lessons [2024]`` or ``a*b`` reads its own files.

    Writes inside the store are kept out by :func:`check_read_only`, which admits SELECT (with WITH) and
    plain EXPLAIN of a SELECT only.
    """
    if not store.root.is_dir():
        raise FileNotFoundError(f"store {store.url} does not exist (run `lessonlens run` first)")
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    if store.is_remote:
        con.register_filesystem(store.reader_filesystem())
    # the marts scan ``frames`` several times in one query; each scan would parse every partition's footer again
    # (233 columns each: about half of a scan's time over 5,000 partitions, bench/marts.py)
    con.execute("set parquet_metadata_cache = true")
    con.execute("set temp_directory = ''")
    con.execute(f"set memory_limit = '{sql_literal(memory_limit or default_memory_limit())}'")
    allowed = ", ".join(f"'{sql_literal(store.url)}/{folder}/'" for folder in QUERYABLE)
    con.execute(f"set allowed_directories = [{allowed}]")
    con.execute("set enable_external_access = false")
    for path in sql_files("staging"):
        text = path.read_text()
        view = staging_sql(store, text)
        if view is not None:
            con.execute(view)
        else:
            con.register(path.name.removesuffix(".sql"), _empty(path.name.removesuffix(".sql")))
    set_thresholds(con, thresholds)
    con.execute(f"set variable emotion_stream = '{check_emotion_stream(emotion_stream)}'")
    for path in sql_files("macros"):
        con.execute(path.read_text())
    # creating a view binds its query: over thousands of partitions each mart costs seconds (bench/marts.py)
    wanted = None if marts is None else needed_marts(marts)
    for mart in mart_files():
        if wanted is None or mart.name in wanted:
            con.execute(f"create or replace view {mart.name} as\n{mart.path.read_text()}")
    con.execute("set lock_configuration = true")
    return con


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
        keys = [pa.field("task", pa.string()), pa.field("model_version", pa.string()), video_id]
        fields = {f.name: f for task in TASK_CLASSES for f in prediction_schema(task)}
        return pa.schema([*keys, *fields.values()]).empty_table()
    return pa.Table.from_pandas(empty_frame(CATALOG_TABLES[name]), preserve_index=False)


def _refuse(statement: str, why: str) -> QueryRefused:
    return QueryRefused(
        f"refused: `lessonlens query` is read-only, and {why}: {statement.strip()[:80]!r}. "
        "Use SELECT (or EXPLAIN of a SELECT) over the views."
    )


def _words(sql: str) -> list[tuple[int, str]]:
    """(offset, lower-case text) of each token of ``sql`` that is not a comment."""
    tokens = duckdb.tokenize(sql)
    ends = [start for start, _ in tokens[1:]] + [len(sql)]
    return [
        (start, sql[start:end].strip().lower())
        for (start, kind), end in zip(tokens, ends, strict=True)
        if kind != duckdb.token_type.comment
    ]


def check_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> list[str]:
    """The statements of ``sql`` when every one is a SELECT, a PIVOT or a plain EXPLAIN of a SELECT; QueryRefused
    naming the first other statement (COPY, ATTACH, SET, EXPLAIN ANALYZE of anything ...) otherwise."""
    statements = con.extract_statements(sql)
    if not statements:
        raise QueryRefused("refused: no SQL statement given")
    for statement in statements:
        text = statement.query
        if statement.type == duckdb.StatementType.EXPLAIN:
            words = _words(text)
            if len(words) < 2 or words[1][1] in ("analyze", "analyse"):
                raise _refuse(text, "EXPLAIN ANALYZE executes its statement")
            inner = con.extract_statements(text[words[1][0] :])
            if len(inner) != 1 or inner[0].type != duckdb.StatementType.SELECT:
                raise _refuse(text, "EXPLAIN is allowed of a SELECT only")
        elif statement.type == duckdb.StatementType.MULTI and PIVOT_WORDS & {w for _, w in _words(text)}:
            continue  # PIVOT without an IN list: DuckDB runs it as CREATE TYPE (of the pivot's values) + SELECT
        elif statement.type != duckdb.StatementType.SELECT:
            raise _refuse(text, f"this is a {statement.type.name.lower()} statement")
    return [s.query for s in statements]


def open_query(
    store: Store, sql: str, memory_limit: str | None = None, emotion_stream: str = "emotion"
) -> tuple[duckdb.DuckDBPyConnection, list[str]]:
    """A sandboxed connection over ``store`` (:func:`connect`, with only the marts the SQL names and those they
    depend on; the expression marts read ``emotion_stream``) and the statements of read-only ``sql``, every one
    checked before any runs (:func:`check_read_only`)."""
    marts = {word.strip('"') for _, word in _words(sql)}
    con = connect(store, marts=marts, memory_limit=memory_limit, emotion_stream=emotion_stream)
    return con, check_read_only(con, sql)


def query_batches(
    con: duckdb.DuckDBPyConnection, statements: list[str], batch_rows: int = 8192
) -> Iterator[pa.RecordBatch]:
    """Run ``statements`` (each to completion) and stream the last one's rows in batches of ``batch_rows``: a
    result is never held whole."""
    for statement in statements[:-1]:
        con.execute(statement).fetchall()
    yield from con.sql(statements[-1]).to_arrow_reader(batch_rows)


class QueryStopped(RuntimeError):
    """A statement stopped because it ran past its time limit."""


def run_interruptible(con: duckdb.DuckDBPyConnection, work: Callable[[], None], timeout: float | None) -> None:
    """Run ``work`` (statements on ``con``) in a thread while this one waits: Ctrl-C (KeyboardInterrupt, re-raised)
    or ``timeout`` seconds (:class:`QueryStopped`) interrupt ``con`` within a fraction of a second. DuckDB holds
    the thread that runs a statement until it ends, so a signal handler on that thread would wait for it."""
    failure: list[BaseException] = []
    done = threading.Event()  # not Thread.join: a join that Ctrl-C interrupted may return early after it

    def target() -> None:
        try:
            work()
        except BaseException as exc:  # re-raised in the caller's thread
            failure.append(exc)
        finally:
            done.set()

    deadline = None if timeout is None else time.monotonic() + timeout
    threading.Thread(target=target, name="lessonlens-query", daemon=True).start()
    try:
        while not done.wait(0.05):
            if deadline is not None and time.monotonic() > deadline:
                con.interrupt()
                done.wait()
                raise QueryStopped(f"parameter --timeout: the query ran past {timeout:g} s and was stopped")
    except KeyboardInterrupt:
        con.interrupt()
        done.wait()
        raise
    if failure:
        raise failure[0]


QUERY_ATTEMPTS = 3  # a run replacing a partition while a query lists the files: read again (run_query)
VANISHED = ("No such file or directory", "No files found that match the pattern")  # DuckDB's words for it


def file_vanished(exc: BaseException) -> bool:
    """Whether ``exc`` is DuckDB failing to open a file the views listed, which a run removed meanwhile."""
    return isinstance(exc, duckdb.IOException) and any(words in str(exc) for words in VANISHED)


def run_query(store: Store, sql: str, emotion_stream: str = "emotion") -> pa.Table:
    """Run read-only ``sql`` over the store's staging views and marts (the expression marts read
    ``emotion_stream``) and return the last statement's rows (whole: ``lessonlens query`` streams them with
    :func:`open_query` and :func:`query_batches`).

    A file the views listed that a run removed before DuckDB opened it (a partition replaced meanwhile: new
    predictions after a promotion, a video extracted again, an erasure) makes the query run again on a fresh
    listing, up to :data:`QUERY_ATTEMPTS` times in all."""
    attempt = 1
    while True:
        con, statements = open_query(store, sql, emotion_stream=emotion_stream)
        try:
            for statement in statements[:-1]:
                con.execute(statement).fetchall()
            return con.sql(statements[-1]).to_arrow_table()
        except duckdb.IOException as exc:
            if not file_vanished(exc) or attempt == QUERY_ATTEMPTS:
                raise
            attempt += 1
        finally:
            con.close()
