"""Text from files and users, made safe where it is written or shown (issue 26).

- :func:`path_text`: a file name as text every UTF-8 writer (Parquet, JSON, the Prefect API) accepts. Python
  keeps the bytes of a name that is not UTF-8 as lone surrogates (``surrogateescape``); they become ``\\xNN``
  escapes here, so the catalog, the failures and the logs name such a file instead of failing on it.
- :func:`shown`: a value for a terminal or a log line: control characters (escape sequences, newlines,
  carriage returns) and bidirectional overrides are written as Python escapes (``\\x1b``, ``\\n``), so a
  value can neither drive the terminal nor split a log line.
- :func:`csv_safe`: a table for a CSV file: text cells (and column names) that a spreadsheet would run as a
  formula (starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return: OWASP's rule) get a leading
  ``'``; numbers are left alone.
- :func:`md_cell`: a value for Markdown: HTML escaped, pipes escaped, control characters as in :func:`shown`.
"""

import html
import os
import re

import pandas as pd

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def path_text(path: str | os.PathLike) -> str:
    """``path`` as valid UTF-8 text: bytes that are not UTF-8 as ``\\xNN`` escapes (other names unchanged)."""
    text = os.fspath(path)
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # surrogates that did not come from undecodable bytes
        raw = text.encode("utf-8", "backslashreplace")
    return raw.decode("utf-8", "backslashreplace")


def _escape(match: re.Match) -> str:
    char = match.group()
    return repr(char)[1:-1] if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def shown(value: object) -> str:
    """``value`` as text safe to print on a terminal or in one log line (see the module docstring)."""
    return _UNSAFE.sub(_escape, path_text(str(value)))


def csv_cell(value: object) -> object:
    """A text ``value`` that starts like a formula, with a leading ``'``; anything else as it is."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def csv_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with :func:`csv_cell` applied to its column names and to every text cell."""
    out = frame.rename(columns=lambda c: csv_cell(str(c)))
    for i in range(out.shape[1]):
        values = out.iloc[:, i]
        if pd.api.types.is_object_dtype(values) or pd.api.types.is_string_dtype(values):
            out.isetitem(i, values.map(csv_cell))
    return out


def md_cell(value: object) -> str:
    """``value`` as text for a Markdown document or table cell (see the module docstring)."""
    return shown(html.escape(str(value), quote=False)).replace("|", "\\|")
