"""The JSON result every benchmark writes (``--json PATH``), which ``bench/run.py`` turns into RESULTS.md.

One file per benchmark::

    {"benchmark": "extract", "title": "...", "command": "python bench/extract.py --seconds 120",
     "conditions": {"video": "...", "resolution": "640x360", "fps": 5, ...},   # what holds for every row
     "rows": [{"what": "face path", "crops": false, "body_fps": 0, "frames_per_s": 62.4, ...}, ...],
     "headline": {"face path / limit": 0.81, ...},                             # the figures to quote
     "measured_at": "2026-12-02T16:40:00+00:00", "machine": {"cpus": 2, "python": "3.11.9"}}

A row's keys are the table's columns (the union over rows, in first-seen order); a row may carry its own
conditions (``crops``, ``body_fps``, ``model``) next to its figures.
"""

import json
import os
import platform
import sys
from datetime import UTC, datetime
from pathlib import Path


def command_line(script: str, argv: list[str] | None) -> str:
    """How to rerun this measurement: ``python bench/<script> <args>`` without the ``--json`` output."""
    args = list(sys.argv[1:] if argv is None else argv)
    if "--json" in args:
        at = args.index("--json")
        del args[at : at + 2]
    repo = Path(__file__).resolve().parents[1]
    args = [os.path.relpath(a, repo) if os.path.isabs(a) and os.path.exists(a) else a for a in args]
    return " ".join(["python", f"bench/{Path(script).name}", *args])


def write_result(
    path: str | os.PathLike | None,
    benchmark: str,
    title: str,
    command: str,
    conditions: dict,
    rows: list[dict],
    headline: dict | None = None,
) -> dict:
    """Write (when ``path`` is given) and return one benchmark's result (see the module docstring)."""
    result = {
        "benchmark": benchmark,
        "title": title,
        "command": command,
        "conditions": conditions,
        "rows": rows,
        "headline": headline or {},
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "system": platform.system()},
    }
    if path is not None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(result, indent=2, default=str) + "\n")
        os.replace(tmp, path)
    return result
