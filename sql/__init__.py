"""The SQL of LessonLens, shipped as package data.

``staging/``: one view per Parquet table, renames and casts only. ``macros/``: DuckDB macros the marts
share. ``marts/``: reads staging only; each file states its grain, keys and dependencies. Read through
``importlib.resources`` by ``tasks.analyse.warehouse``; no Python lives here.
"""
