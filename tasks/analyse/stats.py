"""Analysis of covariance (ANCOVA) for between-subject designs, written with numpy and scipy only.

`ancova` fits the linear model ``dv ~ covariates + f1 * f2 * ... * fk`` (all factor interactions, no
factor x covariate terms) and returns a tidy `AncovaResult`: the ANCOVA table (Type II or Type III sums
of squares), covariate-adjusted means per factor level, and the homogeneity-of-regression-slopes test.
Paper 1 (teacher expression and gesture, Tables 6-8) reports exactly these quantities for a 2 x 2
(facial x body expression) design with a pre-test covariate.

Degenerate designs never produce a silent number: they raise a `DegenerateDesignWarning` subclass that
names the column, level or term, and the affected statistics are NaN.
"""

import itertools
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

TABLE_COLUMNS = ["source", "ss", "df", "ms", "F", "p", "np2"]
MEANS_COLUMNS = ["factor", "level", "mean", "se", "n"]
RESIDUAL = "Residual"
ESTIMABLE_TOL = 1e-8  # relative distance from the row space of X above which a mean is not estimable


class DegenerateDesignWarning(UserWarning):
    """The design or data cannot support some of the requested statistics; those are NaN."""


class SingleLevelWarning(DegenerateDesignWarning):
    """A factor has one level after listwise deletion: its terms have 0 df and NaN statistics."""


class EmptyCellWarning(DegenerateDesignWarning):
    """A combination of factor levels has no rows: non-estimable terms and means are NaN."""


class ConstantCovariateWarning(DegenerateDesignWarning):
    """A covariate is constant after listwise deletion: its row is NaN."""


class SingularDesignWarning(DegenerateDesignWarning):
    """The design matrix is rank-deficient, so a term has fewer testable df than columns: its row is NaN."""


class ResidualDfWarning(DegenerateDesignWarning):
    """No residual degrees of freedom are left: no F test is possible."""


@dataclass(frozen=True)
class AncovaResult:
    """What `ancova` returns; every table has fixed column names (TABLE_COLUMNS, MEANS_COLUMNS)."""

    dv: str
    between: list[str]
    covariates: list[str]
    ss_type: int
    table: pd.DataFrame
    adjusted_means: pd.DataFrame
    slopes: pd.DataFrame
    n_used: int
    n_dropped: int

    def to_dict(self) -> dict:
        """JSON-ready dict: tables as lists of records, NaN as None."""
        return {
            "dv": self.dv,
            "between": list(self.between),
            "covariates": list(self.covariates),
            "ss_type": self.ss_type,
            "n_used": self.n_used,
            "n_dropped": self.n_dropped,
            "table": _records(self.table),
            "adjusted_means": _records(self.adjusted_means),
            "slopes": _records(self.slopes),
        }


def read_table(path: str | Path, dtype=None) -> pd.DataFrame:
    """Read a ``.csv`` or ``.parquet`` file into a DataFrame.

    Args:
        path: file to read; the suffix picks the reader.
        dtype: passed to `pandas.read_csv` for CSV files; Parquet files keep their stored types.

    Raises:
        FileNotFoundError: the file does not exist.
        ValueError: unsupported suffix, or the file cannot be parsed, or it has no columns.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such file: {path}")
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ValueError(f"{path}: unsupported file type {suffix!r}; use .csv or .parquet")
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path, dtype=dtype, skip_blank_lines=False)
        else:
            frame = pd.read_parquet(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, OSError, ValueError) as err:
        raise ValueError(f"{path}: cannot read as {suffix[1:]}: {err}") from err
    if frame.columns.empty:
        raise ValueError(f"{path}: the file has no columns")
    if suffix == ".csv":
        _check_csv_shape(path)
    return frame


def _check_csv_shape(path: Path) -> None:
    """What pandas would mend silently: a blank or repeated column name (read as ``Unnamed: 0``, ``x.1``),
    a row with fewer fields than the header (its last columns read as missing)."""
    import csv

    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        for position, name in enumerate(header, start=1):
            if not name:
                raise ValueError(f"{path}: row 1 (header): column {position} has no name")
            if name in header[: position - 1]:
                raise ValueError(f"{path}: row 1 (header): column {position} repeats the name {name!r}")
        for row, fields in enumerate(reader, start=2):
            if fields and len(fields) < len(header):
                raise ValueError(f"{path}: row {row}: {len(fields)} fields, the header has {len(header)}")


def ancova(
    data: pd.DataFrame,
    dv: str,
    between: list[str] | str,
    covariates: list[str] | str,
    ss_type: int = 2,
) -> AncovaResult:
    """Between-subject ANCOVA with any number of factors (all interactions) and one or more covariates.

    Method:
        Model: ``dv ~ c1 + ... + cm + f1 * ... * fk`` by ordinary least squares; no factor x covariate
        terms (common slopes). Factor levels are the observed levels (categorical order when the column is
        categorical, sorted otherwise); unused categories are ignored.
        Coding: sum-to-zero (deviation) contrasts for every factor, the last level coded -1 (as R's
        ``contr.sum`` and patsy's ``Sum``); interaction columns are products of main-effect columns.
        Covariates: centred at their grand mean over the rows used (and scaled internally, which changes
        no reported number).
        Type II SS: for each term, the increase in explained SS when the term is added to the model of
        all terms that do not contain it (covariates are contained in no term), as in R ``car::Anova``
        and statsmodels ``anova_lm(typ=2)``.
        Type III SS: the increase in explained SS when the term is added last to all other terms, with
        the sum-to-zero coding above. The intercept is not reported.
        df of a term: the rank it adds. F = MS_term / MS_residual of the full model; p from the F
        distribution; partial eta squared np2 = SS_term / (SS_term + SS_residual).
        Adjusted (estimated marginal) means: predictions with every covariate at its grand mean,
        averaged with equal weight over the levels of the other factors; se from the model covariance
        ``MS_residual * (X'X)^-``. ``n`` is the number of rows at that level.
        Slopes test: the model is extended with covariate x cell interactions (``c:(f1*...*fk)``, one
        slope per cell for each covariate); each covariate's block is tested against the extended model
        with that block removed (one row per covariate, source ``f1:c`` or ``(f1*f2):c``).
        Missing data: listwise deletion over dv, factors and covariates; ``n_dropped`` counts the rows
        removed.

    Degenerate designs warn with a `DegenerateDesignWarning` subclass and give NaN, never a number:
    a factor with one level (`SingleLevelWarning`), an empty cell (`EmptyCellWarning`; non-estimable
    terms and means are NaN), a constant covariate (`ConstantCovariateWarning`), a term with fewer
    testable df than columns because of collinearity (`SingularDesignWarning`), no residual df
    (`ResidualDfWarning`), a constant dv or perfect fit (`DegenerateDesignWarning`).

    Args:
        data: one row per subject, long format.
        dv: name of the numeric outcome column.
        between: factor column name(s).
        covariates: numeric covariate column name(s).
        ss_type: 2 or 3.

    Returns:
        `AncovaResult` with ``table`` (columns ``source, ss, df, ms, F, p, np2``; covariates first, then
        factor terms by order, then ``Residual``), ``adjusted_means`` (``factor, level, mean, se, n``),
        ``slopes`` (same columns as ``table``), ``n_used`` and ``n_dropped``.

    Raises:
        TypeError: ``data`` is not a DataFrame, a name is not a string, or dv/a covariate is not numeric.
        ValueError: a column is missing or used twice, ``ss_type`` is not 2 or 3, a value is infinite,
            or no complete rows remain.
    """
    between = _names(between, "between")
    covariates = _names(covariates, "covariates")
    _check_inputs(data, dv, between, covariates, ss_type)
    used = data[[dv, *between, *covariates]]
    complete = used.notna().all(axis=1).to_numpy()
    used = used[complete]
    if used.empty:
        raise ValueError(missing_message(data, [dv, *between, *covariates]))
    _check_finite(used, [dv, *covariates])
    design = _Design(used, dv, between, covariates)
    model = _Fit(design.matrix(), design.y)
    error = _error_term(model, design)
    terms = covariates + design.factor_terms
    rows = []
    for term in terms:  # a loop, not a comprehension, so warnings point at the caller on Python 3.11
        rows.append(_term_row(design, model, error, term, ss_type))
    table = pd.DataFrame([*rows, _residual_row(error)], columns=TABLE_COLUMNS)
    return AncovaResult(
        dv=dv,
        between=between,
        covariates=covariates,
        ss_type=ss_type,
        table=table,
        adjusted_means=_adjusted_means(design, model, error),
        slopes=_slopes_table(design),
        n_used=len(used),
        n_dropped=int((~complete).sum()),
    )


def _names(value, role: str) -> list[str]:
    names = [value] if isinstance(value, str) else value
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        raise TypeError(f"{role} must be a column name or a list of column names, got {value!r}")
    if not names:
        raise ValueError(f"{role} needs at least one column name")
    return list(names)


def _check_inputs(data, dv, between, covariates, ss_type) -> None:
    if not isinstance(data, pd.DataFrame):
        raise TypeError(f"data must be a pandas DataFrame, got {type(data).__name__}")
    if not isinstance(dv, str):
        raise TypeError(f"dv must be a column name, got {dv!r}")
    if ss_type not in (2, 3):
        raise ValueError(f"ss_type must be 2 or 3, got {ss_type!r}")
    names = [dv, *between, *covariates]
    missing = [n for n in names if n not in data.columns]
    if missing:
        raise ValueError(f"columns not in data: {missing}; available: {list(data.columns)}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"columns used more than once across dv/between/covariates: {repeated}")
    for name in [dv, *covariates]:
        dtype = data[name].dtype
        if not pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
            raise TypeError(f"column {name!r} must be numeric, got dtype {dtype}")


def _check_finite(used: pd.DataFrame, names: list[str]) -> None:
    for name in names:
        infinite = ~np.isfinite(used[name].to_numpy(dtype=float))
        if infinite.any():
            label = used.index[infinite][0]
            raise ValueError(f"column {name!r} has an infinite value at index {label!r}")


def _levels(column: pd.Series) -> list:
    present = pd.unique(column)
    if isinstance(column.dtype, pd.CategoricalDtype):
        observed = set(present)
        return [c for c in column.cat.categories if c in observed]
    try:
        return sorted(present)
    except TypeError:
        return list(present)


def _standardized(column: pd.Series, constant: bool) -> np.ndarray:
    """Centred at the grand mean and scaled to unit SD; a constant covariate becomes a zero column."""
    values = column.to_numpy(dtype=float)
    if constant:
        return np.zeros_like(values)
    return (values - values.mean()) / values.std()


def _sum_coding(codes: np.ndarray, n_levels: int) -> np.ndarray:
    """(n, n_levels - 1) deviation coding: level j < last -> unit vector j, last level -> all -1."""
    basis = np.vstack([np.eye(n_levels - 1), -np.ones((1, n_levels - 1))])
    return basis[codes]


def _row_kron(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a[:, :, None] * b[:, None, :]).reshape(len(a), -1)


class _Design:
    """Coded columns of the ANCOVA model, one block per term, plus the level bookkeeping."""

    def __init__(self, used: pd.DataFrame, dv: str, between: list[str], covariates: list[str]):
        self.dv, self.between, self.covariates = dv, between, covariates
        self.y = used[dv].to_numpy(dtype=float)
        self.levels = {f: _levels(used[f]) for f in between}
        self.codes = {f: pd.Categorical(used[f], categories=self.levels[f]).codes for f in between}
        combos = [c for size in range(1, len(between) + 1) for c in itertools.combinations(between, size)]
        self.term_factors = {":".join(combo): combo for combo in combos}
        self.factor_terms = list(self.term_factors)
        self._warn_single_levels()
        self._warn_empty_cells()
        self.constant_covariates = [c for c in covariates if used[c].nunique() == 1]
        self._warn_constant_covariates(used)
        self.cov_columns = {c: _standardized(used[c], c in self.constant_covariates) for c in covariates}
        self.blocks = {
            **{c: col[:, None] for c, col in self.cov_columns.items()},
            **self.factor_blocks(self.codes),
        }

    def _warn_single_levels(self) -> None:
        for f, levels in self.levels.items():
            if len(levels) == 1:
                warnings.warn(
                    f"factor {f!r} has a single level {levels[0]!r}: its terms have 0 df and NaN statistics",
                    SingleLevelWarning,
                    stacklevel=4,
                )

    def _warn_empty_cells(self) -> None:
        if len(self.between) < 2:
            return
        shape = [len(self.levels[f]) for f in self.between]
        cell = np.ravel_multi_index([self.codes[f] for f in self.between], shape)
        empty = np.flatnonzero(np.bincount(cell, minlength=int(np.prod(shape))) == 0)
        if empty.size:
            names = [self._cell_name(np.unravel_index(i, shape)) for i in empty[:5]]
            more = f" and {empty.size - 5} more" if empty.size > 5 else ""
            warnings.warn(
                f"{empty.size} empty cell(s): {'; '.join(names)}{more}; non-estimable terms and adjusted means are NaN",
                EmptyCellWarning,
                stacklevel=4,
            )

    def _cell_name(self, index) -> str:
        return ", ".join(f"{f}={self.levels[f][i]!r}" for f, i in zip(self.between, index, strict=True))

    def _warn_constant_covariates(self, used: pd.DataFrame) -> None:
        for c in self.constant_covariates:
            warnings.warn(
                f"covariate {c!r} is constant ({used[c].iloc[0]!r}): its statistics are NaN",
                ConstantCovariateWarning,
                stacklevel=4,
            )

    def factor_blocks(self, codes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Sum-coded columns of every factor term for the given level codes (rows of data or a grid)."""
        main = {f: _sum_coding(codes[f], len(self.levels[f])) for f in self.between}
        blocks = {}
        for term in self.factor_terms:
            first, *rest = self.term_factors[term]
            block = main[first]
            for f in rest:
                block = _row_kron(block, main[f])
            blocks[term] = block
        return blocks

    def matrix(self, drop: tuple[str, ...] = (), extra: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """Intercept plus every block (and ``extra`` block) except those named in ``drop``."""
        blocks = {**self.blocks, **(extra or {})}
        kept = [b for name, b in blocks.items() if name not in drop]
        return np.hstack([np.ones((len(self.y), 1)), *kept])

    def contains(self, term: str) -> list[str]:
        """Factor terms that strictly contain ``term`` (none for a covariate)."""
        if term not in self.term_factors:
            return []
        inner = set(self.term_factors[term])
        return [t for t in self.factor_terms if inner < set(self.term_factors[t])]


class _Fit:
    """Least-squares fit through the SVD; rank-aware, so singular designs fit without error."""

    def __init__(self, x: np.ndarray, y: np.ndarray):
        u, s, vt = np.linalg.svd(x, full_matrices=False)
        tol = s.max(initial=0.0) * max(x.shape) * np.finfo(float).eps
        keep = s > tol
        self.u, self.s, self.vt = u[:, keep], s[keep], vt[keep]
        self.rank = int(keep.sum())
        self.uty = self.u.T @ y
        self.fitted = self.u @ self.uty
        self.rss = float(np.sum((y - self.fitted) ** 2))


@dataclass(frozen=True)
class _Error:
    ss: float
    df: int
    ms: float


def _error_term(model: _Fit, design: _Design, label: str = "", stacklevel: int = 3) -> _Error:
    df = len(design.y) - model.rank
    if df == 0:
        warnings.warn(
            f"{label}no residual df: {len(design.y)} rows for {model.rank} model parameters; F, p and np2 are NaN",
            ResidualDfWarning,
            stacklevel=stacklevel,
        )
        return _Error(ss=np.nan, df=0, ms=np.nan)
    total = float(np.sum((design.y - design.y.mean()) ** 2))
    if total == 0 or model.rss <= total * len(design.y) * np.finfo(float).eps:
        warnings.warn(
            f"{label}dv {design.dv!r} is constant or fitted exactly: F, p and np2 are NaN",
            DegenerateDesignWarning,
            stacklevel=stacklevel,
        )
        return _Error(ss=model.rss, df=df, ms=np.nan)
    return _Error(ss=model.rss, df=df, ms=model.rss / df)


def _test(bigger: _Fit, smaller: _Fit) -> tuple[float, int]:
    """Extra SS and df of ``bigger`` over the nested ``smaller``, from the fitted values (no cancellation)."""
    return float(np.sum((bigger.fitted - smaller.fitted) ** 2)), bigger.rank - smaller.rank


def _term_row(design: _Design, model: _Fit, error: _Error, term: str, ss_type: int) -> dict:
    nominal = design.blocks[term].shape[1]
    if ss_type == 3:
        bigger = model
        smaller = _Fit(design.matrix(drop=(term,)), design.y)
    else:
        outer = tuple(design.contains(term))
        bigger = _Fit(design.matrix(drop=outer), design.y) if outer else model
        smaller = _Fit(design.matrix(drop=(*outer, term)), design.y)
    ss, df = _test(bigger, smaller)
    return _row(term, ss, df, nominal, error, warn=term not in design.constant_covariates)


def _row(source: str, ss: float, df: int, nominal: int, error: _Error, warn: bool = True) -> dict:
    if nominal == 0 or df < nominal:
        if nominal > 0 and warn:
            warnings.warn(
                f"term {source!r} has {df} testable df of {nominal} (rank-deficient design): its statistics are NaN",
                SingularDesignWarning,
                stacklevel=4,
            )
        return {"source": source, "df": df, **dict.fromkeys(["ss", "ms", "F", "p", "np2"], np.nan)}
    ms = ss / df
    f_value = ms / error.ms
    return {
        "source": source,
        "ss": ss,
        "df": df,
        "ms": ms,
        "F": f_value,
        "p": float(stats.f.sf(f_value, df, error.df)) if np.isfinite(f_value) else np.nan,
        "np2": ss / (ss + error.ss) if np.isfinite(error.ms) else np.nan,
    }


def _residual_row(error: _Error) -> dict:
    nan = {"F": np.nan, "p": np.nan, "np2": np.nan}
    return {"source": RESIDUAL, "ss": error.ss, "df": error.df, "ms": error.ms, **nan}


def _adjusted_means(design: _Design, model: _Fit, error: _Error) -> pd.DataFrame:
    grid = np.array(list(itertools.product(*(range(len(design.levels[f])) for f in design.between))))
    grid_codes = {f: grid[:, i] for i, f in enumerate(design.between)}
    blocks = design.factor_blocks(grid_codes)
    covariate_zeros = np.zeros((len(grid), len(design.covariates)))  # centred covariates at their grand mean
    rows_x = np.hstack([np.ones((len(grid), 1)), covariate_zeros, *blocks.values()])
    records = []
    for f in design.between:
        for code, level in enumerate(design.levels[f]):
            weights = rows_x[grid_codes[f] == code].mean(axis=0)
            mean, se = _estimate(model, weights, error)
            n = int(np.sum(design.codes[f] == code))
            records.append({"factor": f, "level": level, "mean": mean, "se": se, "n": n})
    return pd.DataFrame(records, columns=MEANS_COLUMNS)


def _estimate(model: _Fit, weights: np.ndarray, error: _Error) -> tuple[float, float]:
    """Estimate of weights @ beta and its se; NaN when weights are not in the row space of X."""
    projected = model.vt.T @ (model.vt @ weights)
    if np.linalg.norm(weights - projected) > ESTIMABLE_TOL * max(np.linalg.norm(weights), 1.0):
        return np.nan, np.nan
    scaled = (model.vt @ weights) / model.s
    return float(scaled @ model.uty), float(np.sqrt(error.ms) * np.linalg.norm(scaled))


def _slopes_table(design: _Design) -> pd.DataFrame:
    cells = np.hstack(list(design.factor_blocks(design.codes).values()))
    extra = {_slopes_source(design.between, c): design.cov_columns[c][:, None] * cells for c in design.covariates}
    full = _Fit(design.matrix(extra=extra), design.y)
    error = _error_term(full, design, "slopes test: ", stacklevel=4)
    rows = []
    for c, (source, block) in zip(design.covariates, extra.items(), strict=True):
        smaller = _Fit(design.matrix(drop=(source,), extra=extra), design.y)
        ss, df = _test(full, smaller)
        rows.append(_row(source, ss, df, block.shape[1], error, warn=c not in design.constant_covariates))
    return pd.DataFrame([*rows, _residual_row(error)], columns=TABLE_COLUMNS)


def _slopes_source(between: list[str], covariate: str) -> str:
    cells = between[0] if len(between) == 1 else f"({'*'.join(between)})"
    return f"{cells}:{covariate}"


def _records(frame: pd.DataFrame) -> list[dict]:
    return frame.astype(object).where(frame.notna(), None).to_dict("records")


# units of analysis: unit-level factors and unit means (the mixed model: tasks/analyse/mixed.py) ----------


def constant_within(data: pd.DataFrame, columns: list[str], group: str) -> dict[str, bool]:
    """For each column: True when it takes one value within every unit of ``group`` (a unit-level factor)."""
    return {c: bool((data.dropna(subset=[c]).groupby(group)[c].nunique() <= 1).all()) for c in columns}


def unit_means(data: pd.DataFrame, dv: str, between: list[str], covariates: list[str], group: str) -> pd.DataFrame:
    """One row per unit: its factor levels (which must be constant within the unit), the means of ``dv`` and of
    each covariate over its students with all of them present, and ``n_students``."""
    used = data[[group, *between, dv, *covariates]].dropna()
    varying = [f for f, constant in constant_within(used, between, group).items() if not constant]
    if varying:
        raise ValueError(f"factors {varying} vary within units of {group!r}: unit means need unit-level factors")
    grouped = used.groupby(group, sort=True)
    out = grouped[[dv, *covariates]].mean()
    for f in between:
        out[f] = grouped[f].first()
    out["n_students"] = grouped.size()
    return out.reset_index()[[group, *between, dv, *covariates, "n_students"]]


def missing_message(data: pd.DataFrame, columns: list[str]) -> str:
    """Why no row is complete: each column with missing values and how many rows lack it."""
    counts = {c: int(data[c].isna().sum()) for c in columns if c in data.columns and data[c].isna().any()}
    detail = ", ".join(f"{c!r} missing in {k} of {len(data)} rows" for c, k in counts.items())
    return f"no complete rows in columns {columns} after listwise deletion: {detail or 'no rows given'}"
