"""Predictions in the store and their staleness: one partition per task × model version × video.

A video's predictions by a newer version replace the older ones, video by video; a video is stale for a
(task, version) when it has no predictions by it, predictions older than its frames, or predictions written
before windows carried ``n_owned``.
"""

from pathlib import Path

import pyarrow as pa

from tasks.store.files import read_schema, remove_empty_folder, remove_tree, write_table_atomic


class PredictionsMixin:
    """Predictions of :class:`tasks.store.Store` and their staleness (a mixin: it uses the store's ``root``,
    partitions and erasures)."""

    # predictions ------------------------------------------------------------------------------
    def prediction_path(self, task: str, version: str, video_id: str) -> Path:
        folder = self.root / "predictions" / f"task={task}" / f"model_version={version}"
        return folder / f"video_id={video_id}" / "part-0.parquet"

    def write_predictions(self, table: pa.Table, task: str, version: str, video_id: str) -> None:
        """Write a video's predictions of ``task`` by ``version``, then delete those of any other version.

        Between the two steps a reader of the raw ``predictions`` view may see both versions of this one
        video; the marts always read one model version per video (``sql/marts/expression_windows.sql``).
        """
        path = self.prediction_path(task, version, video_id)
        write_table_atomic(table, path)
        for folder in self.root.glob(f"predictions/task={task}/model_version=*/video_id={video_id}"):
            if folder != path.parent:
                remove_tree(folder)
                remove_empty_folder(folder.parent)  # the version's folder, once its last video is gone

    def stale_videos(self, task: str, version: str, table: str = "frames") -> list[str]:
        """Videos with a ``table`` partition (``frames``; ``body`` for gesture) but no predictions of ``task``
        by ``version``, or predictions older than that partition (the video was re-extracted), or written before
        windows carried ``n_owned`` (the marts' time accounting reads it; recomputed once)."""
        stale = []
        erased = self.erased_videos()  # never predicted again, even if a partition were left behind
        for video_id in self.video_ids(table):
            if video_id in erased:
                continue
            frames = self.partition(table, video_id)
            out = self.prediction_path(task, version, video_id)
            if (
                not out.is_file()
                or out.stat().st_mtime_ns < frames.stat().st_mtime_ns
                or "n_owned" not in read_schema(out).names
            ):
                stale.append(video_id)
        return stale
