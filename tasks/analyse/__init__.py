"""Analysis: DuckDB over the store (``warehouse``: the sandboxed read-only connection, staging views and
marts), the students' outcomes (``outcomes``), statistics (``stats``: ANCOVA and unit means; ``mixed``: the
REML random-intercept model with Satterthwaite df; ``nesting``: the grouping levels and the unit of analysis;
``reading``: the analysis to read of each outcome), the analysis of a store (``analysis``) and its report
(``report``, worded by ``wording``), and the evaluation of the expression stream on labelled clips
(``evaluate``).

May import: ``tasks.store``, ``tasks.extract``, ``tasks.predict``, ``tasks.synthetic`` and ``models`` (and
third-party packages); never ``flows``.
"""
