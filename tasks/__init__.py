"""The work itself, as plain typed functions that Dask runs and tests call directly.

Extraction (``discover``, ``decode``, ``faces``, ``body``, ``tracking``, ``action_units``, ``crops``,
``extract``), clip preparation for training (``prepare``), inference (``inference``), the store
(``store``: every path, schema, record and atomic write under the store root), DuckDB over the store
(``warehouse``), personal data: erasure, retention and what is kept by default (``privacy``), the analysis
(``outcomes``, ``stats``, ``analysis``, ``report``), evaluation and the synthetic demo corpus.

May import: ``models`` (and third-party packages). Never ``flows``: Prefect and Dask wiring stay there.
"""
