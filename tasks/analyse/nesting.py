"""Which grouping levels a table has, and at which level its factors are set: the unit of analysis.

Students sit in clusters (sessions in teachers in courses ...). A factor set per teacher is constant within
every teacher, so the teachers, not the sessions or the students, are its independent replications: the unit
of analysis is the **highest** grouping level within which every factor is constant (the level at which the
factors are assigned). Levels below it are aggregated into it (unit means, or the unit's random intercept in
the mixed model, whose between-unit variance then carries theirs); levels above it are levels within which
the factors vary: they are named, not modelled. When the factors vary within even the lowest level, students
are the replications of them and the lowest level is a random intercept (`Levels.unit` is None).

Cluster ids need not be unique across their parent (``class 1`` of two schools): units are keyed by their path
from the top level (``school A/class 1``).
"""

from dataclasses import dataclass, field

import pandas as pd


def noun(level: str) -> str:
    """``session_id`` → ``session``: how a level is named in sentences."""
    return level.removesuffix("_id")


@dataclass(frozen=True)
class Levels:
    """The grouping levels of a table (lowest first), units per level, and the unit of analysis."""

    levels: list[str]  # lowest first; each nested in the next
    counts: dict[str, int]  # units per level
    constant: dict[str, list[str]]  # level -> the factors constant within each of its units
    unit: str | None  # the analysis unit; None: the factors vary within the lowest level
    detected: str | None  # the unit the data imply (differs from ``unit`` when overridden)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"levels": list(self.levels), "units_per_level": dict(self.counts), "constant_within": self.constant,
                "unit": self.unit, "detected_unit": self.detected, "notes": list(self.notes)}  # fmt: skip


def unit_keys(data: pd.DataFrame, clusters: list[str]) -> pd.DataFrame:
    """One column per cluster (outermost first in ``clusters``): each row's unit at that level, keyed by its
    path from the outermost level, so repeated inner labels in different parents stay apart. Rows missing a
    cluster id get NaN at that level and below."""
    missing = [c for c in clusters if c not in data.columns]
    if missing:
        raise ValueError(f"cluster column(s) {missing} not in the data; available: {list(data.columns)}")
    if len(set(clusters)) < len(clusters):
        raise ValueError(f"cluster columns repeat: {clusters}")
    keys = pd.DataFrame(index=data.index)
    path = pd.Series("", index=data.index, dtype=object)
    for c in clusters:
        text = data[c].astype("string")
        path = (path + "/" + text).where(text.notna() & path.notna())
        keys[c] = path.str.lstrip("/")
    return keys


def nested_order(data: pd.DataFrame, candidates: list[str]) -> tuple[list[str], list[str]]:
    """Of ``candidates`` (id columns with globally unique ids, e.g. session_id, teacher_id, course), those that
    form a nesting chain, outermost first, and a note per column left out because it is not nested (a
    session with two teachers). The column with the most ids is the lowest level."""
    present = [c for c in candidates if c in data.columns and data[c].notna().any()]
    present.sort(key=lambda c: -data[c].nunique())
    chain, notes = present[:1], []
    for column in present[1:]:
        parents = data.dropna(subset=[chain[-1], column]).groupby(chain[-1])[column].nunique()
        if (parents > 1).any() or data[column].nunique() >= data[chain[-1]].nunique():
            crossing = parents[parents > 1]
            example = (
                f"{noun(chain[-1])} {crossing.index[0]!r} has {int(crossing.iloc[0])} {noun(column)}s"
                if len(crossing)
                else ""
            )
            notes.append(f"{column} is not a grouping level above {chain[-1]} ({example or 'as many ids'}): not used")
            continue
        chain.append(column)
    return chain[::-1], notes


def detect_levels(data: pd.DataFrame, factors: list[str], clusters: list[str], override: str | None = None) -> Levels:
    """The levels of ``clusters`` (outermost first), the factors constant within each, and the unit of analysis
    (module docstring). ``override`` (a cluster column) forces the unit; the notes say when it departs from the
    detected one and why that matters.

    Raises:
        ValueError: a cluster column is missing; a level lies within the one listed after it (the order is
            wrong); ``override`` is not a cluster or a factor varies within its units.
    """
    keys = unit_keys(data, clusters)
    counts = {c: int(keys[c].nunique()) for c in clusters}
    for outer, inner in zip(clusters, clusters[1:], strict=False):
        pairs = data[[outer, inner]].dropna()
        inside = pairs.groupby(outer)[inner].nunique()
        if pairs[inner].nunique() < pairs[outer].nunique() and (inside == 1).all():
            raise ValueError(
                f"cluster {outer!r} ({pairs[outer].nunique()} ids) lies within {inner!r} ({pairs[inner].nunique()} "
                "ids): list the clusters outermost first"
            )
    constant = {}
    for c in clusters:
        frame = pd.concat([keys[c].rename("__unit"), data[factors]], axis=1).dropna()
        within = frame.groupby("__unit")[factors].nunique() if len(frame) else pd.DataFrame(columns=factors)
        constant[c] = [f for f in factors if (within[f] <= 1).all()]
    carrying = [c for c in clusters if set(constant[c]) == set(factors)]
    detected = carrying[0] if carrying else None  # the outermost level within which all factors are constant
    levels = clusters[::-1]
    notes = [_level_note(c, counts[c], detected, constant[c], factors) for c in clusters if c != detected]
    unit = detected
    if override is not None:
        if override not in clusters:
            raise ValueError(f"parameter link: {override!r} is not one of the grouping levels {clusters}")
        if set(constant[override]) != set(factors):
            varying = [f for f in factors if f not in constant[override]]
            raise ValueError(f"parameter link: {varying} vary within units of {override!r}: it cannot be the unit")
        if override != detected:
            notes.insert(
                0,
                f"the unit {override} is set by --link and overrides the detected unit {detected}: the factors are "
                f"constant within every {noun(detected)}, so {noun(override)}s of one {noun(detected)} are not "
                "independent replications and the p-values are optimistic",
            )
        unit = override
    return Levels(levels, counts, constant, unit, detected, [n for n in notes if n])


def _level_note(level: str, count: int, unit: str | None, constant: list[str], factors: list[str]) -> str:
    if unit is None:
        return f"{', '.join(factors)} vary within {noun(level)}s ({count}): students are their replications"
    if set(constant) == set(factors):
        return f"{noun(level)}s ({count}) lie within {noun(unit)}s: aggregated into the {noun(unit)} level"
    varying = ", ".join(f for f in factors if f not in constant)
    return f"{varying} vary within {noun(level)}s ({count}): the {noun(level)} level is not modelled"
