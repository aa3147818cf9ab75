"""The work itself, as plain typed functions that Dask runs and tests call directly.

Extraction (``discover``, ``decode``, ``faces``, ``body``, ``tracking``, ``action_units``, ``crops``,
``extract``), clip preparation for training (``prepare``), inference (``inference``), the store
(``store``: every path, schema, record and atomic write under the store root), DuckDB over the store
(``warehouse``), the analysis (``outcomes``, ``stats``, ``analysis``, ``report``), evaluation and the
synthetic demo corpus.

May import: ``models`` (and third-party packages). Never ``flows``: Prefect and Dask wiring stay there.
"""
