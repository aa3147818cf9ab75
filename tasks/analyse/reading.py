"""The analysis a reader should read, per outcome: the method, its tests with effect sizes and intervals,
adjusted means with intervals from that model, the assumption checks, and one sentence saying why.

Method per outcome (``units`` = units of the analysis level with at least one complete row of the outcome):

- factors constant within units (set per unit): the ANCOVA of unit means, each unit once with its mean
  pre-test as covariate; with no residual df left nothing is tested and the sentence says so;
- factors varying within the lowest level: the linear mixed model with a random intercept per lowest-level
  cluster (`tasks.analyse.mixed`: REML, Satterthwaite df), the students being the replications.

The rule comes from bench/analysis_fpr.py (figures in bench/RESULTS.md): over 6-30 teachers, equal and unequal
sizes, ICC 0-0.3 and sessions nested in teachers, the ANCOVA of teacher means held its 5 % in every design,
while the mixed model with Satterthwaite df, read from 10 teachers on in that run, fell to 1.7-2.7 % with
little clustering (a unit variance estimated just above 0 gives between-unit df to an almost student-level
standard error). The mixed model is still fitted: its conditional ICC is the clustering reported below.

Effect sizes: partial eta squared ``F df1 / (F df1 + df2)`` (for the unit-means ANCOVA this is ``SS / (SS +
SS_error)``) with a 95 % interval by inverting the noncentral F (Steiger 2004; ``lambda / (lambda + df1 + df2 +
1)``), and for a 1-df term of two-level factors the difference between its levels, first minus second in
level order (difference of differences for an interaction) in the outcome's units with a 95 % t interval.
`holm` adds Holm-adjusted p across outcomes and factor terms (covariates are not hypotheses).

Clustering left after the pre-test and the factors: the conditional ICC ``s2_u / (s2_u + s2)`` of the REML fit,
the design effect ``1 + (n0 - 1) ICC`` (n0: the unbalanced mean unit size). The student-level p-values are
flagged optimistic when the design effect exceeds ``OPTIMISTIC_DESIGN_EFFECT`` (1.1: a z test of a unit-level
factor whose variance is understated 1.1 times rejects a true null 6.2 % of the time, 2 Phi(-1.96 / sqrt 1.1))
and the unit variance is distinguishable from 0 (REML likelihood ratio, p < 0.05): the point estimate alone
exceeds 1.1 in about half of the data sets with no clustering at all.
"""

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize, stats

from tasks.analyse.mixed import MEANS_COLUMNS, MixedResult, mixed_model, reml_fit
from tasks.analyse.nesting import Levels, noun
from tasks.analyse.stats import (
    RESIDUAL,
    AncovaResult,
    _Design,
    _error_term,
    _estimate,
    _Fit,
    _records,
    ancova,
    unit_means,
)

OPTIMISTIC_DESIGN_EFFECT = 1.1
READ_COLUMNS = ["source", "df", "df_den", "F", "p", "p_holm", "eta_p2", "eta_p2_low", "eta_p2_high",
                "difference", "difference_low", "difference_high"]  # fmt: skip


@dataclass(frozen=True)
class OutcomeAnalysis:
    """One outcome: the analysis to read, the student-level ANCOVA beside it, assumptions and clustering."""

    dv: str
    method: str  # "mixed model" | "unit-means ANCOVA"
    unit: str  # the level whose units are the replications (the lowest cluster when factors vary within it)
    n_units: int
    sentence: str
    table: pd.DataFrame  # READ_COLUMNS
    means: pd.DataFrame  # MEANS_COLUMNS
    assumptions: dict
    clustering: dict  # icc (conditional), design_effect, unit_variance_p, optimistic
    residuals: np.ndarray  # unit-level residuals of the read model (Q-Q plot)
    student_level: AncovaResult
    model: MixedResult | AncovaResult
    notes: list[str] = field(default_factory=list)

    def read_dict(self) -> dict:
        """JSON-ready; each table row also carries its intervals as ``[low, high]`` pairs (``*_ci95``)."""
        table = _records(self.table)
        for row in table:
            for name in ("eta_p2", "difference"):
                row[f"{name}_ci95"] = [row[f"{name}_low"], row[f"{name}_high"]]
        return {"method": self.method, "unit": self.unit, "n_units": self.n_units, "sentence": self.sentence,
                "table": table, "adjusted_means": _records(self.means),
                "assumptions": self.assumptions, "clustering": self.clustering, "notes": list(self.notes)}  # fmt: skip

    def to_dict(self) -> dict:
        return {"read": self.read_dict(), "student_level": self.student_level.to_dict()}


def analyse_outcome(
    data: pd.DataFrame,
    dv: str,
    factors: list[str],
    covariates: list[str],
    levels: Levels,
    ss_type: int = 2,
    details: bool = True,
) -> OutcomeAnalysis:
    """The design-aware analysis of one outcome (module docstring); ``data`` has one row per student with the
    ``levels.levels`` columns keyed by `tasks.analyse.nesting.unit_keys`. ``details=False`` (simulations)
    computes the same tests and clustering and leaves out adjusted means, effect sizes, intervals and the
    assumption checks (NaN or empty)."""
    student = ancova(data, dv, factors, covariates, ss_type)
    unit = levels.unit or levels.levels[0]
    used = data.dropna(subset=[dv, *factors, *covariates, unit])
    n_units = int(used[unit].nunique())
    mixed_ok = _full_rank(used, dv, factors, covariates)
    if levels.unit is None:
        model = mixed_model(used, dv, factors, covariates, unit, means=details)
        table = _mixed_table(model, details)
        means = model.adjusted_means
        residuals = model.unit_residuals().to_numpy()
        assumptions = _mixed_assumptions(model, used, unit) if details else {}
        method = "mixed model"
        fit = model.fit
    else:
        means_frame = unit_means(used, dv, factors, covariates, unit)
        model = ancova(means_frame, dv, factors, covariates, ss_type)
        table, means, residuals = _unit_means_table(means_frame, model, details)
        assumptions = _unit_assumptions(model, means_frame, factors, residuals) if details else {}
        method = "unit-means ANCOVA"
        fit = _icc_fit(used, dv, factors, covariates, unit) if mixed_ok else None
    clustering = _clustering(fit, used, unit, factors, levels)
    sentence = _sentence(dv, unit, n_units, len(used), factors, levels, table)
    return OutcomeAnalysis(dv, method, unit, n_units, sentence, table[READ_COLUMNS], means[MEANS_COLUMNS],
                           assumptions, clustering, residuals, student, model)  # fmt: skip


def _full_rank(used: pd.DataFrame, dv: str, factors: list[str], covariates: list[str]) -> bool:
    if used.empty:
        return False
    x = _Design(used, dv, factors, covariates).matrix()
    return np.linalg.matrix_rank(x) == x.shape[1] and len(used) > x.shape[1]


def _icc_fit(used, dv, factors, covariates, unit):
    design = _Design(used, dv, factors, covariates)
    return reml_fit(design.matrix(), design.y, used[unit].astype(str).to_numpy())


def eta_squared_interval(f_value: float, df1: float, df2: float, level: float = 0.95) -> tuple[float, float, float]:
    """Partial eta squared from F and its interval from the noncentral F (module docstring); NaN when F is."""
    if not np.isfinite(f_value) or not np.isfinite(df2) or df2 <= 0:
        return (np.nan,) * 3
    point = f_value * df1 / (f_value * df1 + df2)

    def ncp(prob: float) -> float:
        def gap(lam: float) -> float:
            return stats.ncf.cdf(f_value, df1, df2, lam) - prob if lam > 0 else stats.f.cdf(f_value, df1, df2) - prob

        if gap(0.0) <= 0:
            return 0.0
        hi = max(10.0, 4 * f_value * df1)
        while gap(hi) > 0:
            hi *= 2
        return optimize.brentq(gap, 0.0, hi, xtol=1e-10)

    to_eta = lambda lam: lam / (lam + df1 + df2 + 1)  # noqa: E731
    return point, to_eta(ncp(0.5 + level / 2)), to_eta(ncp(0.5 - level / 2))


def _two_level_weights(design: _Design, term: str, start: int) -> np.ndarray | None:
    """Weights giving the difference between the two levels of a 1-df term (sum coding: 2^m times its column)."""
    if term not in design.term_factors or design.blocks[term].shape[1] != 1:
        return None
    weights = np.zeros(design.matrix().shape[1])
    weights[start] = 2.0 ** len(design.term_factors[term])
    return weights


def _effect_columns(row: dict, details: bool = True) -> dict:
    eta, low, high = eta_squared_interval(row["F"], row["df"], row["df_den"]) if details else (np.nan,) * 3
    return {**row, "eta_p2": eta, "eta_p2_low": low, "eta_p2_high": high, "p_holm": np.nan}


def _mixed_table(model: MixedResult, details: bool) -> pd.DataFrame:
    rows, start = [], 1
    for source, record in zip(model.design.blocks, model.table.to_dict("records"), strict=True):
        row = _effect_columns(record, details)
        weights = _two_level_weights(model.design, source, start)
        if weights is not None and details:
            est = model.fit.estimate(weights)
            row |= {"difference": est["estimate"], "difference_low": est["ci_low"], "difference_high": est["ci_high"]}
        rows.append(row)
        start += model.design.blocks[source].shape[1]
    return pd.DataFrame(rows).reindex(columns=READ_COLUMNS)


def _unit_means_table(
    frame: pd.DataFrame, result: AncovaResult, details: bool
) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    design = _Design(frame.dropna(subset=[result.dv, *result.between, *result.covariates]), result.dv,
                     result.between, result.covariates)  # fmt: skip
    fit = _Fit(design.matrix(), design.y)
    error = _error_term(fit, design)
    df_den = error.df if error.df > 0 else np.nan
    rows, start = [], 1
    for record in result.table[result.table["source"] != RESIDUAL].to_dict("records"):
        row = _effect_columns({"source": record["source"], "df": record["df"], "df_den": df_den,
                               "F": record["F"], "p": record["p"]}, details)  # fmt: skip
        weights = _two_level_weights(design, record["source"], start)
        if weights is not None and np.isfinite(error.ms) and details:
            value, se = _estimate(fit, weights, error)
            half = stats.t.ppf(0.975, error.df) * se
            row |= {"difference": value, "difference_low": value - half, "difference_high": value + half}
        rows.append(row)
        start += design.blocks[record["source"]].shape[1]
    means = result.adjusted_means.assign(df=df_den)
    half = stats.t.ppf(0.975, df_den) * means["se"] if error.df > 0 else np.nan
    means = means.assign(ci_low=means["mean"] - half, ci_high=means["mean"] + half)
    residuals = design.y - fit.fitted if error.df > 0 else np.empty(0)  # an exact fit leaves only rounding
    return pd.DataFrame(rows).reindex(columns=READ_COLUMNS), means, residuals


def _normality(residuals: np.ndarray) -> dict:
    if len(residuals) < 3 or np.ptp(residuals) == 0:
        return {"test": "Shapiro-Wilk", "W": None, "p": None, "n": len(residuals)}
    w, p = stats.shapiro(residuals)
    return {"test": "Shapiro-Wilk", "W": float(w), "p": float(p), "n": len(residuals)}


def _spread(residuals: np.ndarray, cells: pd.Series) -> dict:
    if len(residuals) == 0:
        return {"test": "Brown-Forsythe", "W": None, "p": None, "reason": "no residual df"}
    groups = [residuals[(cells == c).to_numpy()] for c in pd.unique(cells)]
    if len(groups) < 2 or min(len(g) for g in groups) < 3:  # with 2, both deviations from the median are equal
        return {"test": "Brown-Forsythe", "W": None, "p": None, "reason": "fewer than 3 units in a cell"}
    w, p = stats.levene(*groups, center="median")
    return {"test": "Brown-Forsythe", "W": float(w), "p": float(p) if np.isfinite(p) else None}


def _cells(frame: pd.DataFrame, factors: list[str]) -> pd.Series:
    return frame[factors].astype(str).agg(" × ".join, axis=1).reset_index(drop=True)


def _unit_assumptions(result: AncovaResult, frame: pd.DataFrame, factors: list[str], residuals) -> dict:
    slopes = result.slopes[result.slopes["source"] != RESIDUAL]
    testable = slopes["p"].notna().all() and len(slopes)
    return {
        "level": "unit means",
        "slopes": _records(slopes[["source", "df", "F", "p"]]) if testable else None,
        "slopes_reason": None if testable else "no residual df left for a slope per cell at the unit level",
        "spread": _spread(residuals, _cells(frame.dropna(subset=[result.dv, *result.covariates]), factors)),
        "normality": _normality(residuals),
        "converged": None,
    }


def _mixed_assumptions(model: MixedResult, used: pd.DataFrame, unit: str) -> dict:
    """Slopes: the covariate x cell block added to the mixed model, F test with Satterthwaite df."""
    design, slopes, reason = model.design, None, None
    if design.between:
        cells = np.hstack(list(design.factor_blocks(design.codes).values()))
        extra = np.hstack([design.cov_columns[c][:, None] * cells for c in design.covariates])
        x = np.hstack([design.matrix(), extra])
        try:
            fit = reml_fit(x, design.y, used[unit].astype(str).to_numpy())
            lmat = np.eye(x.shape[1])[design.matrix().shape[1] :]
            slopes = [{"source": f"({'*'.join(design.between)}):{'+'.join(design.covariates)}", **fit.test(lmat)}]
        except (ValueError, np.linalg.LinAlgError) as err:
            reason = str(err)
    residuals = model.unit_residuals().to_numpy()
    per_unit = used.groupby(used[unit].astype(str), sort=True)[design.between].first() if design.between else None
    spread = _spread(residuals, _cells(per_unit, design.between)) if per_unit is not None else None
    return {"level": f"{noun(unit)} (mixed model)", "slopes": slopes, "slopes_reason": reason, "spread": spread,
            "normality": _normality(residuals), "converged": bool(model.fit.converged)}  # fmt: skip


def _clustering(fit, used: pd.DataFrame, unit: str, factors: list[str], levels: Levels) -> dict:
    if fit is None:
        return {"icc": None, "design_effect": None, "unit_variance_p": None, "optimistic": False}
    sizes = used.groupby(unit).size().to_numpy(float)
    n, k = sizes.sum(), len(sizes)
    n0 = (n - float(np.sum(sizes**2)) / n) / (k - 1)
    icc, p = fit.icc, fit.unit_variance_p()
    deff = 1 + (n0 - 1) * icc
    optimistic = bool(levels.unit is not None and deff > OPTIMISTIC_DESIGN_EFFECT and p < 0.05)
    return {"icc": icc, "design_effect": float(deff), "n0": float(n0), "unit_variance_p": p, "optimistic": optimistic}


def _sentence(dv, unit, n_units, n_students, factors, levels, table) -> str:
    what, name = ", ".join(factors), noun(unit)
    tested = table[table["source"].map(lambda s: all(part in factors for part in s.split(":")))]
    if levels.unit is None:
        return (
            f"Read the linear mixed model for {dv}: {what} vary within {name}s, so the {n_students} students are "
            f"their replications, with a random intercept per {name} ({n_units}) and Satterthwaite df."
        )
    if levels.detected not in (None, unit):
        base = (
            f"{what} are set per {noun(levels.detected)}, yet --link makes the {n_units} {name}s the replications: "
            "the p-values are optimistic"
        )
    else:
        base = (
            f"{what} are set per {name}, so the {n_units} {name}s, not the {n_students} students, are the replications"
        )
    if tested["p"].isna().all():
        return (
            f"Nothing about {what} can be tested for {dv}: {base}, and {n_units} {name}s leave no residual df for "
            "the ANCOVA of their means; do not read the student-level p-values as evidence either."
        )
    return (
        f"Read the ANCOVA of {name} means for {dv}: {base}; each {name} counts once, with its mean pre-test as "
        "covariate."
    )


def holm(analyses: dict[str, OutcomeAnalysis], factors: list[str]) -> None:
    """Fill ``p_holm`` of every factor term across all outcomes (Holm's step-down; covariates left NaN)."""
    entries = []
    for dv, analysis in analyses.items():
        for index, row in analysis.table.iterrows():
            if all(part in factors for part in row["source"].split(":")) and pd.notna(row["p"]):
                entries.append((row["p"], dv, index))
    entries.sort(key=lambda e: e[0])
    m, running = len(entries), 0.0
    for rank, (p, dv, index) in enumerate(entries):
        running = max(running, min(1.0, (m - rank) * p))
        analyses[dv].table.loc[index, "p_holm"] = running
