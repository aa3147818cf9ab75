"""The work itself, as plain typed functions that Dask runs and tests call directly, grouped by stage so the
folder reads like the data flow:

- ``store/``: the store at the bottom: every path, schema, catalog record, lock, erasure and atomic write
  under the store root.
- ``extract/``: from a video file to per-frame numbers: discovery and probing, decoding, faces, landmarks and
  head pose, tracking, action units, body keypoints, aligned crops, and the per-video extraction.
- ``predict/``: models at work: clip preparation, training, inference into ``predictions``, and the
  personal-data policy that depends on them (crops kept per role, erasure, retention).
- ``analyse/``: DuckDB over the store (warehouse), outcomes, statistics, the analysis and its report, and the
  evaluation of the expression stream against labelled clips.
- ``synthetic/``: made-up material for the demo corpus, tests and benchmarks (pip-shipped face photos, FACS
  warps, videos written from frames).

May import: ``models`` (and third-party packages), never ``flows``. Inside ``tasks`` imports run one way:
store ← extract ← predict ← analyse (each stage imports only the stages before it), and synthetic uses store
and extract and is used only by analyse (evaluation makes clips from stills); ``tests/test_layout.py``
enforces it.
"""
