"""How the analysis is worded: effect names as paper 1 prints them, p-values, and the analysis to read of
each outcome (`tasks.analyse.reading.OutcomeAnalysis`) as text tables and sentences, for the report and the CLI."""

from collections.abc import Mapping

import numpy as np
import pandas as pd

from tasks.analyse.stats import RESIDUAL

EFFECT_LABELS = {
    "pretest": "Pre-test score (covariate)",
    "facial_group": "Facial expression",
    "body_group": "Body expression",
    RESIDUAL: "Error",
}


def effect_label(source: str) -> str:
    """Paper wording for an ANCOVA source: ``facial_group:body_group`` → ``Facial expression × Body expression``."""
    return " × ".join(EFFECT_LABELS.get(part, part) for part in source.split(":"))


def format_p(p: float) -> str:
    """p as the paper prints it: three decimals, ``<0.001`` below that, empty when NaN."""
    if pd.isna(p):
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def number(value: float, digits: int) -> str:
    return "" if pd.isna(value) else f"{value:.{digits}f}"


def _interval(value: float, low: float, high: float, digits: int) -> str:
    return "" if pd.isna(value) else f"{value:.{digits}f} [{number(low, digits)}, {number(high, digits)}]"


def read_table(analysis) -> pd.DataFrame:
    """The analysis to read as text: df (numerator, denominator), F, p, Holm p, ηp² and the difference
    between the two levels of a 1-df term, each with its 95 % interval."""
    t = analysis.table
    return pd.DataFrame(
        {
            "Effect": [effect_label(s) for s in t["source"]],
            "df": [
                f"{a:.0f}, {b:.1f}" if pd.notna(b) else f"{a:.0f}" for a, b in zip(t["df"], t["df_den"], strict=True)
            ],
            "F": [number(v, 2) for v in t["F"]],
            "p": [format_p(v) for v in t["p"]],
            "Holm p": [format_p(v) for v in t["p_holm"]],
            "ηp² [95% CI]": [_interval(*r, 3) for r in t[["eta_p2", "eta_p2_low", "eta_p2_high"]].to_numpy()],
            "Difference, 1st − 2nd level [95% CI]": [
                _interval(*r, 2) for r in t[["difference", "difference_low", "difference_high"]].to_numpy()
            ],
        }
    )


def model_label(analysis) -> str:
    """Which model the analysis to read is, in words."""
    model, unit = analysis.model, analysis.unit.removesuffix("_id")
    if analysis.method == "mixed model":
        fit = model.fit
        return (
            f"linear mixed model, random intercept per {unit} (REML, Satterthwaite df; {fit.n_units} {unit}s, "
            f"{fit.n} students; {unit} variance {fit.group_var:.3g}, residual {fit.scale:.3g}"
            f"{'' if fit.converged else '; NOT CONVERGED'})"
        )
    return f"ANCOVA of {unit} means ({model.n_used} {unit}s; covariate: the {unit}'s mean pre-test)"


def read_means(analysis) -> pd.DataFrame:
    """Adjusted means of the analysis to read, with 95 % intervals and the units at each level."""
    m = analysis.means
    return pd.DataFrame(
        {
            "Factor": [effect_label(f) for f in m["factor"]],
            "Level": m["level"].astype(str),
            "Adjusted mean [95% CI]": [_interval(*r, 2) for r in m[["mean", "ci_low", "ci_high"]].to_numpy()],
            "SE": [number(v, 2) for v in m["se"]],
            f"{analysis.unit.removesuffix('_id')}s": m["n"].astype(str),
        }
    )


def _test_text(check: dict | None, name: str) -> str:
    if not check or check.get("p") is None:
        return f"{name}: not testable" + (f" ({check['reason']})" if check and check.get("reason") else "")
    return f"{name}: W = {check['W']:.3f}, p = {format_p(check['p'])}"


def assumptions_sentence(analysis) -> str:
    """Slopes, spread, normality and convergence of the analysis to read, in one line."""
    a = analysis.assumptions
    if a["slopes"]:
        slopes = "; ".join(
            f"{r['source']}: F({number(r['df'], 0)}, {number(r.get('df_den', np.nan), 1) or '?'}) = "
            f"{number(r['F'], 2)}, p = {format_p(r['p']) or 'n/a'}"
            for r in a["slopes"]
        )
    else:
        slopes = f"not testable ({a['slopes_reason']})"
    parts = [f"homogeneity of regression slopes — {slopes}", _test_text(a["spread"], "Brown-Forsythe (spread by cell)"),
             _test_text(a["normality"], "Shapiro-Wilk (normality)")]  # fmt: skip
    if a["converged"] is not None:
        parts.append("converged" if a["converged"] else "NOT CONVERGED")
    return f"Assumptions at the level analysed ({a['level']}): " + "; ".join(parts) + "."


def clustering_table(outcomes: Mapping[str, object]) -> pd.DataFrame:
    """Per outcome: the method, its units, and the clustering left after the pre-test and the factors."""
    rows = []
    for dv, a in outcomes.items():
        c = {k: np.nan if v is None else v for k, v in a.clustering.items()}
        rows.append({"Outcome": dv, "Analysis to read": a.method, "Units": f"{a.n_units} {a.unit}",
                     "ICC given pre-test": number(c["icc"], 3), "Design effect": number(c["design_effect"], 2),
                     "p (unit variance = 0)": format_p(c["unit_variance_p"]),
                     "Student-level p optimistic": "yes" if c["optimistic"] is True else "no"})  # fmt: skip
    return pd.DataFrame(rows)


def read_csv(outcomes: Mapping[str, object]) -> pd.DataFrame:
    """Every outcome's analysis to read at full precision, with ``outcome``, ``method`` and the effect names."""
    frames = [a.table.assign(outcome=dv, method=a.method, unit=a.unit) for dv, a in outcomes.items()]
    table = pd.concat(frames, ignore_index=True)
    table.insert(3, "effect", table["source"].map(effect_label))
    return table[["outcome", "method", "unit", "effect", *table.columns.drop(["outcome", "method", "unit", "effect"])]]


def has_qq(analysis) -> bool:
    return len(analysis.residuals) >= 3 and np.ptp(analysis.residuals) > 0


def short_label(analysis) -> str:
    unit = analysis.unit.removesuffix("_id")
    return (
        f"mixed model, random intercept per {unit}" if analysis.method == "mixed model" else f"ANCOVA of {unit} means"
    )


def clustering_sentence(analysis) -> str:
    c = analysis.clustering
    if c["icc"] is None:
        return "Clustering left after the pre-test and the factors: not estimable here."
    text = (
        f"Clustering left after the pre-test and the factors: ICC {c['icc']:.3f}, design effect "
        f"{c['design_effect']:.2f} (unit variance = 0: p = {format_p(c['unit_variance_p'])})"
    )
    if c["optimistic"]:
        return text + ": paper 1's student-level p-values below are optimistic (students are not independent)."
    return text + "."
