"""The store: the one owner of the layout, the Parquet schemas, the records and the atomic writes (the bottom
stage of ``tasks``).

Nothing else builds a path under the store root: flows and tasks ask a :class:`Store` (made once, at the
flow or CLI boundary, and passed as is to workers). Layout under one root (a local folder, or a prefix on
object storage: ``s3://bucket/prefix``, ``gs://…``, ``az://…``, see "Object storage" below)::

    <store>/catalog/videos.parquet    one row per video_id (content hash): probe, extraction summary, manifest
    <store>/catalog/videos-<seq>.parquet  rows recorded since videos.parquet was last written (see below)
    <store>/catalog/files.parquet     one row per path seen: size, mtime, video_id (so unchanged files are not rehashed)
    <store>/catalog/failures.parquet  one row per run × video × stage that failed: reason, message (+ fragments)
    <store>/catalog/runs.parquet      one row per run: parameters and counts (+ fragments)
    <store>/catalog/erasures.parquet  append-only: one row per erasure or undo (video_id, scope, face_id, time)
    <store>/frames/video_id=<id>/part-0.parquet   one row per video × sampled frame × face track
    <store>/body/video_id=<id>/part-0.parquet     one row per video × body-sampled frame × person
    <store>/crops/video_id=<id>/part-0.parquet    one row per video × sampled frame × face: aligned JPEG crop
    <store>/predictions/task=<t>/model_version=<v>/video_id=<id>/part-0.parquet   one row per track × window
    <store>/models/<name>/<version>/              registry (``models.registry``)
    <store>/reports/<run id>/                     analysis reports
    <store>/work/<video_id>/<params>/             chunk fragments of a video being extracted (deleted when done)
    <store>/store.json                            store settings (``group_readable``)

Every file is written under a temporary name in its final folder and renamed into place, so a crash
never leaves a half-written file where a reader (DuckDB) looks. Partition files do not repeat the
``video_id`` column: it is the hive partition key (``hive_partitioning`` in DuckDB and pyarrow).

Permissions: the store root is 0o700 and every folder under it 0o700, every file 0o600 (owner only), or
0o750 / 0o640 when the store is made group-readable (``Store.ensure(group_readable=True)``, remembered in
``store.json``; the group is the folders' group, e.g. set with ``chgrp`` and the setgid bit). New folders
and files take their modes from the folder they are made in (:func:`make_dirs`, :func:`write_table_atomic`),
so Dask workers on other machines follow the policy too; :meth:`Store.ensure` re-applies it to the whole
tree (files written by others, e.g. the model registry) at the start of every writer.

Personal data: :meth:`Store.forget_video` and :meth:`Store.forget_face` remove everything derived from a
video or from one face track and record the erasure in ``erasures`` (no path: the content hash only);
:meth:`Store.expire_crops` applies the crops' retention.

Catalog fragments: a run records each video's row as a small fragment (``videos-<seq>.parquet``, one
atomic write, O(1) in the catalog's size) instead of rewriting ``videos.parquet``, and so its ``failures``
and ``runs`` rows; readers (:meth:`Store.read_catalog`, the DuckDB views of ``sql/staging``) see the union,
a key's row in the newest fragment winning over older fragments and the file (``failures`` has no key: a
row is its own, so a row found twice is one row). :meth:`Store.compact_catalog` (at the end
of a run, and before any whole rewrite) writes the union into ``videos.parquet`` and then deletes the
fragments it holds: a crash in between leaves fragments whose rows equal the file's, so no reader sees a
difference, and a crash at any other moment loses nothing already recorded.

Object storage: a store URL (and a corpus URL, :func:`location`) is opened through fsspec and
universal_pathlib, so the store's paths are ``UPath`` objects with the same methods as local ``Path`` ones;
credentials and endpoints come from each backend's own environment and configuration (``AWS_*`` variables,
``AWS_ENDPOINT_URL``, ``~/.aws``), and non-secret options (an endpoint URL) from ``storage_options``
(``--storage-option KEY=VALUE``), which refuses credentials. There are no folders, no permission modes and no
rename there: a file is one PUT (or a multipart upload completed at the end) of a file written to local
disk first, so it appears whole or not at all (:func:`models.files.atomic_write`), and the single-writer lock
is a lease object (:class:`Lease`) made with a conditional create, renewed while the run lives and taken
over only once it has expired.

Steps hand each other one record, :class:`StepResult` (what one step did to one video); the catalog's
``videos`` and ``failures`` rows are made from it here, and ``runs`` rows by :meth:`Store.append_run`.

Modules: ``core`` (the :class:`Store`: root, settings, permissions, partitions), ``schemas`` (Parquet schemas,
catalog columns), ``files`` (locations, readers, atomic writes, modes), ``lease`` (the single-writer lock),
``catalog`` (catalog tables, fragments, :class:`StepResult`), ``predictions`` (prediction partitions,
staleness), ``erasure`` (erasure, superseded results, crops' retention), ``text`` (file names, terminal
output, CSV and Markdown cells made safe). The rest of the code imports from
this package (``from tasks.store import Store``), never from its modules.

May import: ``models`` (and third-party packages) only: no other stage of ``tasks``.
"""

from tasks.store.catalog import StepResult
from tasks.store.core import Store
from tasks.store.files import (
    is_remote,
    location,
    make_dirs,
    parquet_file,
    parse_storage_options,
    read_metadata,
    read_schema,
    read_table,
    remove_tree,
    write_parts_atomic,
    write_table_atomic,
)
from tasks.store.lease import StoreBusy
from tasks.store.schemas import (
    BODY_SCHEMA,
    CATALOG_TABLES,
    CROP_SCHEMA,
    DESCRIPTOR_SCHEMA,
    FILE_COLUMNS,
    FRAME_SCHEMA,
    VIDEO_COLUMNS,
    empty_frame,
    prediction_schema,
    table_from_columns,
)
from tasks.store.text import csv_safe, md_cell, path_text, shown

__all__ = [
    "BODY_SCHEMA",
    "CATALOG_TABLES",
    "CROP_SCHEMA",
    "DESCRIPTOR_SCHEMA",
    "FILE_COLUMNS",
    "FRAME_SCHEMA",
    "StepResult",
    "Store",
    "StoreBusy",
    "VIDEO_COLUMNS",
    "empty_frame",
    "is_remote",
    "location",
    "make_dirs",
    "parquet_file",
    "parse_storage_options",
    "prediction_schema",
    "read_metadata",
    "read_schema",
    "read_table",
    "csv_safe",
    "md_cell",
    "path_text",
    "shown",
    "remove_tree",
    "table_from_columns",
    "write_parts_atomic",
    "write_table_atomic",
]
