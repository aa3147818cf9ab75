"""Extraction: from a video file to per-frame numbers (the ``frames``, ``body`` and ``crops`` tables).

``discover`` (content ids, probing, the corpus listing and manifest), ``decode`` (decord with PyAV as the
fallback, presentation times, chunk plans), ``faces`` (face backends: MediaPipe by default, insightface),
``tracking`` (face tracks within a video), ``identity`` (tracks linked into persons by face descriptors),
``gallery`` (video-call tiles), ``linking`` (persons across the videos of a course, ``--link-people``: the
``descriptors`` and ``people`` tables), ``action_units`` (AU intensities), ``body`` (BlazePose keypoints),
``crops`` (aligned face crops) and ``video`` (one chunk and one video end to end: the Dask tasks of the
nightly flow).

May import: ``tasks.store`` and ``models`` (and third-party packages); never ``predict``, ``analyse``,
``synthetic`` or ``flows``.
"""
