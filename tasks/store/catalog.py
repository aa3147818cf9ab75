"""The catalog: ``videos``, ``files``, ``failures``, ``runs`` and ``erasures`` tables under ``<store>/catalog``.

A run records each row as a small fragment (``videos-<seq>.parquet``, one atomic write, O(1) in the
catalog's size); readers see the union, a key's newest row winning; :meth:`CatalogMixin.compact_catalog`
merges the fragments into the table's file at the end of a run. :class:`StepResult` is the record steps
hand each other; ``videos`` and ``failures`` rows are made from it here.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa

from tasks.store.files import read_frame, write_table_atomic
from tasks.store.schemas import CATALOG_KEYS, CATALOG_TABLES, concat, conform, empty_frame
from tasks.store.text import path_text


@dataclass
class StepResult:
    """What one step (``extract``, or ``infer`` of one task) did to one video: the record between steps.

    ``status`` is ok | failed | skipped; a failure names the ``stage`` where it happened (probe, decode,
    finalize, infer) and a ``reason`` (``not_a_video``, ``missing_file`` ...), as the ``failures`` table
    does. ``counts`` holds what the step produced (rows, tracks, windows ...), ``info`` what describes it
    (the probe of the video, the model name and version).
    """

    video_id: str
    path: str
    step: str  # extract | infer
    status: str = "failed"
    stage: str | None = None
    reason: str | None = None
    message: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    info: dict[str, object] = field(default_factory=dict)
    seconds: float = 0.0

    def fail(self, stage: str, reason: str, message: str) -> "StepResult":
        self.status, self.stage, self.reason, self.message = "failed", stage, reason, message
        return self


class CatalogMixin:
    """The catalog tables of :class:`tasks.store.Store` (a mixin: it uses the store's ``root``)."""

    # catalog ----------------------------------------------------------------------------------
    def catalog_path(self, table: str) -> Path:
        return self.root / "catalog" / f"{table}.parquet"

    def catalog_fragments(self, table: str) -> list[Path]:
        """Fragments of catalog ``table`` not yet compacted into its file, oldest first."""
        if table not in CATALOG_KEYS:
            return []
        return sorted(self.catalog_path(table).parent.glob(f"{table}-*.parquet"))

    def read_catalog(self, table: str) -> pd.DataFrame:
        """Catalog ``table``: its file and its fragments, the newest row of each key winning (placed where
        that row was recorded, as a whole rewrite after each record would have placed it)."""
        for attempt in range(3):
            path = self.catalog_path(table)
            parts = ([path] if path.is_file() else []) + self.catalog_fragments(table)
            try:
                frames = [read_frame(p) for p in parts]
                break
            except FileNotFoundError:  # compacted meanwhile by the writer: list again
                if attempt == 2:
                    raise
        if not parts:
            return empty_frame(CATALOG_TABLES[table])
        df = conform(concat(frames) if len(frames) > 1 else frames[0], CATALOG_TABLES[table])
        if len(frames) > 1:
            df = df.drop_duplicates(CATALOG_KEYS[table], keep="last", ignore_index=True)
        return df

    def write_catalog(self, table: str, df: pd.DataFrame) -> None:
        """Replace catalog ``table`` by ``df`` (its fragments are compacted first, so that a crash meanwhile
        cannot bring back rows ``df`` left out)."""
        self.compact_catalog(table)
        df = conform(df, CATALOG_TABLES[table])
        write_table_atomic(pa.Table.from_pandas(df, preserve_index=False), self.catalog_path(table))

    def compact_catalog(self, table: str) -> int:
        """Write the union of ``table``'s file and fragments into its file, then delete those fragments;
        returns how many there were. Call under the writer lock."""
        fragments = self.catalog_fragments(table)
        if not fragments:
            return 0
        union = self.read_catalog(table)
        write_table_atomic(pa.Table.from_pandas(union, preserve_index=False), self.catalog_path(table))
        for fragment in fragments:
            fragment.unlink(missing_ok=True)
        self._fragment_seq.pop(table, None)
        return len(fragments)

    def compact_catalogs(self) -> int:
        """:meth:`compact_catalog` of every table recorded as fragments (at the end of a run)."""
        return sum(self.compact_catalog(table) for table in CATALOG_KEYS)

    def record_catalog(self, table: str, rows: pd.DataFrame) -> None:
        """Replace the rows of ``table`` with the keys of ``rows`` (unique) and append the others (all of them
        in a table without a key), in O(1): one new fragment (the table's file itself while it does not exist
        yet). Call under the writer lock."""
        if rows.empty:
            return
        key = CATALOG_KEYS[table]
        if key is not None and rows[key].duplicated().any():
            raise ValueError(f"catalog {table}: rows to record repeat a {key}")
        data = pa.Table.from_pandas(conform(rows, CATALOG_TABLES[table]), preserve_index=False)
        path = self.catalog_path(table)
        if table not in self._fragment_seq:
            if not path.is_file() and not self.catalog_fragments(table):
                write_table_atomic(data, path)
                return
            last = self.catalog_fragments(table)
            self._fragment_seq[table] = int(last[-1].stem.rsplit("-", 1)[1]) if last else 0
        self._fragment_seq[table] += 1
        target = path.with_name(f"{table}-{self._fragment_seq[table]:012d}.parquet")
        while target.exists():  # written meanwhile through another Store object of this store
            self._fragment_seq[table] += 1
            target = path.with_name(f"{table}-{self._fragment_seq[table]:012d}.parquet")
        write_table_atomic(data, target)

    def upsert_catalog(self, table: str, rows: pd.DataFrame, key: str | list[str]) -> None:
        """Replace rows of catalog ``table`` whose ``key`` matches ``rows``; append the others (a whole
        rewrite: :meth:`record_catalog` does the same in O(1) for the tables of ``CATALOG_KEYS``)."""
        if rows.empty:
            return
        old = self.read_catalog(table)
        keys = [key] if isinstance(key, str) else key
        if not old.empty:
            old_idx = pd.MultiIndex.from_frame(old[keys])
            new_idx = pd.MultiIndex.from_frame(rows[keys])
            old = old[~old_idx.isin(new_idx)]
        self.write_catalog(table, concat([old, conform(rows, CATALOG_TABLES[table])]))

    def append_catalog(self, table: str, rows: pd.DataFrame) -> None:
        """Append ``rows`` to catalog ``table``: one fragment for the tables of ``CATALOG_KEYS``, else a whole
        rewrite."""
        if table in CATALOG_KEYS:
            self.record_catalog(table, rows)
        elif not rows.empty:
            self.write_catalog(table, concat([self.read_catalog(table), rows]))

    # records ----------------------------------------------------------------------------------
    def record_video(self, result: StepResult, meta: dict, params_json: str, run_id: str) -> None:
        """The catalog row of one extracted (or failed) video, replacing its earlier row."""
        row = {
            "video_id": result.video_id,
            "path": path_text(result.path),
            **meta,
            **result.counts,
            **(result.info.get("probe") or {}),
            "decoder": result.info.get("decoder"),
            "layout": result.info.get("layout"),
            "status": result.status,
            "params": params_json,
            "run_id": run_id,
            "extracted_at": datetime.now(UTC),
        }
        self.record_catalog("videos", pd.DataFrame([row]))

    def record_failures(self, results: Iterable[StepResult], run_id: str) -> list[dict]:
        """Append a ``failures`` row per failed result and per warning (``info["warnings"]``: stage, reason,
        message; e.g. ``partly_undecodable`` of a video extracted without some time range); returns the rows."""
        rows = [
            {
                "run_id": run_id,
                "video_id": r.video_id,
                "path": path_text(r.path),
                **problem,
                "failed_at": datetime.now(UTC),
            }  # fmt: skip
            for r in results
            for problem in (
                [{"stage": r.stage, "reason": r.reason, "message": r.message and path_text(r.message)}]
                if r.status == "failed"
                else []
            )
            + list(r.info.get("warnings") or [])
        ]
        self.append_catalog("failures", pd.DataFrame(rows))
        return rows

    def append_run(
        self, run_id: str, started_at: datetime, params_json: str, counts: dict, corpus: str | None = None,
        flow_run_id: str | None = None,
    ) -> None:  # fmt: skip
        """One ``runs`` row: what a run was given and what it counted (keys of ``counts`` as in the flows)."""
        run = {
            "run_id": run_id,
            "flow_run_id": flow_run_id,
            "corpus": corpus and path_text(corpus),
            "started_at": started_at,
            "finished_at": datetime.now(UTC),
            "params": params_json,
            "videos_found": counts.get("found", 0),
            "videos_skipped": counts.get("skipped", 0),
            "videos_extracted": counts.get("extracted", 0),
            "videos_failed": counts.get("failed", 0),
            "videos_known_failed": counts.get("known_failed", 0),
            "frames_analysed": counts.get("frames", 0),
        }
        self.append_catalog("runs", pd.DataFrame([run]))
