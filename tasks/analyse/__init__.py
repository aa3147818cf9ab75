"""Analysis: DuckDB over the store (``warehouse``: the sandboxed read-only connection, staging views and
marts), the students' outcomes (``outcomes``), statistics (``stats``: ANCOVA and the unit-level analyses),
the analysis of a store (``analysis``) and its report (``report``), and the evaluation of the expression
stream on labelled clips (``evaluate``).

May import: ``tasks.store``, ``tasks.extract``, ``tasks.predict``, ``tasks.synthetic`` and ``models`` (and
third-party packages); never ``flows``.
"""
