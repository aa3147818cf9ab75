"""Linear mixed model with a random intercept per unit, fitted by REML, with Satterthwaite df.

Model: ``y = X b + Z u + e`` with ``u ~ N(0, s2_u I_k)`` (one intercept per unit, k units), ``e ~ N(0, s2 I_N)``.
The fixed part is coded as `tasks.analyse.stats.ancova` codes it (sum-to-zero contrasts, interaction columns as
products, covariates centred and scaled), so terms, tests and adjusted means line up with the ANCOVA.

Fit: restricted maximum likelihood (REML) with ``s2`` profiled out, over ``g = s2_u / s2 >= 0``. With one random
intercept ``V_j = s2 (I + g 11')`` per unit, so ``V_j^-1 = (I - w_j 11') / s2``, ``w_j = g / (1 + n_j g)``, and every
quantity comes from per-unit sums (``X_j'1``, ``1'y_j``): no N x N matrix. ``g`` is searched on a grid of ``log g``
and refined by bounded Brent; ``g = 0`` (no unit variance: the boundary) is taken when its REML criterion is as
good. The REML log-likelihood matches statsmodels' MixedLM (pinned in tests/test_mixed.py).

Tests of fixed effects (what lmerTest reports in R): for a term with contrast matrix ``L`` (q rows),
``F = (L b)' (L C L')^-1 (L b) / q`` with ``C = (X' V^-1 X)^-1``, on (q, df) degrees of freedom where df is
Satterthwaite's: for one contrast ``l``, ``df = 2 (l'Cl)^2 / (grad' A grad)``, ``grad`` the gradient of ``l'Cl``
with respect to the variance components ``(s2_u, s2)`` and ``A`` their asymptotic covariance, the inverse of the
expected REML information ``I_ab = tr(P V_a P V_b) / 2`` (``P = V^-1 - V^-1 X C X' V^-1``, ``V_a = dV/d theta_a``;
Giesbrecht & Burns 1985). For q > 1: ``L C L'`` is diagonalised into q independent contrasts with df ``nu_m`` and
``df = 2 E / (E - q)``, ``E = sum nu_m / (nu_m - 2)`` (Fai & Cornelius 1996); 2 when a ``nu_m <= 2``. lmerTest takes
``A`` from the observed (numerically differentiated) Hessian instead of the expected information; the two agree
in balanced designs, where df is exactly the classical between-unit df for a unit-level term. At the boundary
(``s2_u`` estimated 0) the df are those of lme4's parametrization by the standard deviation ``s_u``, in which
``C`` does not change to first order (``dC/ds_u = 2 s_u dC/ds2_u = 0``): only ``s2`` counts, as in lmerTest, and
the test is the ordinary least-squares one (taking ``s2_u`` itself at 0 gave between-unit df to a
student-level variance, and 1 % instead of 5 % false positives with no clustering, bench/analysis_fpr.py).
"""

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from scipy import optimize, stats

from tasks.analyse.stats import _check_finite, _check_inputs, _Design, _names, missing_message

MEANS_COLUMNS = ["factor", "level", "mean", "se", "df", "ci_low", "ci_high", "n"]
GRID = np.linspace(np.log(1e-6), np.log(1e4), 41)  # log(s2_u / s2): ICC from 1e-6 to 0.9999


@dataclass(frozen=True)
class MixedFit:
    """A REML fit of ``y ~ X + (1 | unit)``: estimates, variance components and what the df need."""

    beta: np.ndarray
    cov: np.ndarray  # C = (X' V^-1 X)^-1 at the estimates
    group_var: float  # s2_u
    scale: float  # s2
    reml_loglik: float
    boundary_loglik: float  # REML log-likelihood with s2_u = 0
    converged: bool
    n: int
    n_units: int
    x: np.ndarray
    y: np.ndarray
    codes: np.ndarray  # unit index of each row

    @property
    def icc(self) -> float:
        """Unit share of the variance left by the fixed part (conditional ICC)."""
        total = self.group_var + self.scale
        return self.group_var / total if total > 0 else float("nan")

    def unit_variance_p(self) -> float:
        """REML likelihood-ratio test of s2_u = 0: half chi2(1) and half point mass at 0 (Self & Liang 1987)."""
        stat = max(2 * (self.reml_loglik - self.boundary_loglik), 0.0)
        return float(0.5 * stats.chi2.sf(stat, 1)) if stat > 0 else 1.0

    def _vinv(self, m: np.ndarray, s2u: float, s2: float) -> np.ndarray:
        """V^-1 m for an (N, c) matrix, from per-unit column sums."""
        sizes = np.bincount(self.codes, minlength=self.n_units)
        a = s2u / (s2 + sizes * s2u)
        sums = np.zeros((self.n_units, m.shape[1]))
        np.add.at(sums, self.codes, m)
        return (m - a[self.codes, None] * sums[self.codes]) / s2

    @cached_property
    def _info_inverse(self) -> np.ndarray:
        """A: inverse expected REML information of (s2_u, s2)."""
        s2u, s2 = self.group_var, self.scale
        z = np.zeros((self.n, self.n_units))
        z[np.arange(self.n), self.codes] = 1.0
        b = self._vinv(self.x, s2u, s2)  # V^-1 X
        pz = self._vinv(z, s2u, s2) - b @ (self.cov @ (b.T @ z))  # P Z
        zpz = z.T @ pz
        vinv_b = self._vinv(b, s2u, s2)
        sizes = np.bincount(self.codes, minlength=self.n_units)
        a = s2u / (s2 + sizes * s2u)
        tr_v2 = float(np.sum(sizes - (2 * a - sizes * a**2) * sizes)) / s2**2  # tr(V^-2)
        btb_c = (b.T @ b) @ self.cov
        tr_pp = tr_v2 - 2 * float(np.trace(self.cov @ (b.T @ vinv_b))) + float(np.trace(btb_c @ btb_c))
        info = 0.5 * np.array([[np.sum(zpz**2), np.sum(pz**2)], [np.sum(pz**2), tr_pp]])
        if self.group_var == 0:  # boundary: in lme4's parametrization by the sd, s2_u carries no information
            info[0, :] = info[:, 0] = 0.0
        return np.linalg.pinv(info)

    @cached_property
    def _cov_gradient(self) -> list[np.ndarray]:
        """dC/d s2_u and dC/d s2 (C = (X'V^-1 X)^-1), in closed form from the per-unit sums."""
        s2u, s2 = self.group_var, self.scale
        sizes = np.bincount(self.codes, minlength=self.n_units)
        s = np.zeros((self.n_units, self.x.shape[1]))
        np.add.at(s, self.codes, self.x)
        denominator = s2 + sizes * s2u
        d_u = -(s.T * (1 / denominator**2)) @ s  # d(X'V^-1X)/d s2_u = -X'V^-1 Z Z'V^-1 X
        a = s2u / denominator
        d_e = -(self.x.T @ self.x - (s.T * (2 * a - sizes * a**2)) @ s) / s2**2  # -X'V^-2 X
        return [-self.cov @ d @ self.cov for d in (d_u, d_e)]

    def contrast_df(self, lmat: np.ndarray) -> tuple[np.ndarray, float]:
        """Satterthwaite df of each of the q orthogonalised contrasts of ``lmat`` and the F-test df."""
        lmat = np.atleast_2d(lmat)
        values, vectors = np.linalg.eigh(lmat @ self.cov @ lmat.T)
        gradients, a = self._cov_gradient, self._info_inverse
        nus = []
        for m in range(len(values)):
            l_m = vectors[:, m] @ lmat
            grad = np.array([l_m @ g @ l_m for g in gradients])
            spread = float(grad @ a @ grad)
            nus.append(2 * values[m] ** 2 / spread if spread > 0 else float("inf"))
        nus = np.array(nus)
        return nus, _combined_df(nus)

    def test(self, lmat: np.ndarray) -> dict:
        """F test of ``lmat b = 0``: F, numerator and Satterthwaite denominator df, p."""
        lmat = np.atleast_2d(lmat)
        q = lmat.shape[0]
        estimate = lmat @ self.beta
        f_value = float(estimate @ np.linalg.solve(lmat @ self.cov @ lmat.T, estimate)) / q
        _, df = self.contrast_df(lmat)
        return {"F": f_value, "df": q, "df_den": df, "p": float(stats.f.sf(f_value, q, df))}

    def estimate(self, weights: np.ndarray, level: float = 0.95) -> dict:
        """``weights @ b`` with its se, Satterthwaite df and a ``level`` t interval."""
        value = float(weights @ self.beta)
        se = float(np.sqrt(weights @ self.cov @ weights))
        _, df = self.contrast_df(weights[None, :])
        half = stats.t.ppf(0.5 + level / 2, df) * se
        return {"estimate": value, "se": se, "df": df, "ci_low": value - half, "ci_high": value + half}


def _combined_df(nus: np.ndarray) -> float:
    """F-test df from q contrast df (Fai & Cornelius 1996)."""
    if len(nus) == 1 or np.allclose(nus, nus[0], rtol=1e-8):
        return max(float(nus[0]), 1.0)
    if np.any(nus <= 2):
        return 2.0
    e = float(np.sum(nus / (nus - 2)))
    return 2 * e / (e - len(nus))


class _Reml:
    """Profiled REML criterion over g = s2_u / s2 from per-unit sums."""

    def __init__(self, x: np.ndarray, y: np.ndarray, codes: np.ndarray, n_units: int):
        self.sizes = np.bincount(codes, minlength=n_units).astype(float)
        self.s = np.zeros((n_units, x.shape[1]))
        np.add.at(self.s, codes, x)
        self.t = np.bincount(codes, weights=y, minlength=n_units)
        self.xtx, self.xty, self.yty = x.T @ x, x.T @ y, float(y @ y)
        self.dof = len(y) - x.shape[1]

    def parts(self, g: float) -> tuple[np.ndarray, np.ndarray, float]:
        w = g / (1 + self.sizes * g)
        m = self.xtx - (self.s.T * w) @ self.s  # s2 X'V^-1 X
        beta = np.linalg.solve(m, self.xty - (self.s.T * w) @ self.t)
        rss = self.yty - float(np.sum(w * self.t**2)) - float((self.xty - (self.s.T * w) @ self.t) @ beta)
        return m, beta, rss

    def loglik(self, g: float) -> float:
        m, _, rss = self.parts(g)
        logdet = np.linalg.slogdet(m)[1]
        s2 = rss / self.dof
        return float(
            -0.5
            * (np.sum(np.log1p(self.sizes * g)) + logdet + self.dof * np.log(s2) + self.dof * (1 + np.log(2 * np.pi)))
        )


def reml_fit(x: np.ndarray, y: np.ndarray, units: np.ndarray) -> MixedFit:
    """REML fit of ``y ~ x + (1 | units)`` (``x`` full column rank, with its intercept column)."""
    codes = pd.factorize(units, sort=True)[0]
    n_units = int(codes.max()) + 1
    if np.linalg.matrix_rank(x) < x.shape[1]:
        raise ValueError("the fixed-effect design is rank-deficient (an empty cell or collinear columns)")
    if len(y) - x.shape[1] < 1:
        raise ValueError(f"{len(y)} rows for {x.shape[1]} fixed-effect parameters: no residual df")
    reml = _Reml(x, y, codes, n_units)
    values = [reml.loglik(np.exp(v)) for v in GRID]
    best = int(np.argmax(values))
    lo, hi = GRID[max(best - 1, 0)], GRID[min(best + 1, len(GRID) - 1)]
    found = optimize.minimize_scalar(lambda v: -reml.loglik(np.exp(v)), bounds=(lo, hi), method="bounded",
                                     options={"xatol": 1e-10})  # fmt: skip
    g, loglik = float(np.exp(found.x)), -float(found.fun)
    boundary = reml.loglik(0.0)
    if boundary >= loglik:
        g, loglik = 0.0, boundary
    m, beta, rss = reml.parts(g)
    scale = rss / reml.dof
    return MixedFit(
        beta=beta,
        cov=scale * np.linalg.inv(m),
        group_var=g * scale,
        scale=scale,
        reml_loglik=loglik,
        boundary_loglik=boundary,
        converged=bool(found.success) and np.isfinite(loglik),
        n=len(y),
        n_units=n_units,
        x=x,
        y=y,
        codes=codes,
    )


@dataclass(frozen=True)
class MixedResult:
    """``dv ~ covariates + f1 * ... * fk + (1 | group)`` (`mixed_model`): tests, means, variance components."""

    dv: str
    between: list[str]
    covariates: list[str]
    group: str
    table: pd.DataFrame  # source, df, df_den, F, p (Satterthwaite)
    adjusted_means: pd.DataFrame  # factor, level, mean, se, df, ci_low, ci_high, n
    fit: MixedFit
    design: _Design
    n_used: int
    n_dropped: int

    def to_dict(self) -> dict:
        from tasks.analyse.stats import _records

        return {
            "method": f"linear mixed model, random intercept per {self.group} (REML, Satterthwaite df)",
            "dv": self.dv,
            "between": list(self.between),
            "covariates": list(self.covariates),
            "group": self.group,
            "group_var": self.fit.group_var,
            "scale": self.fit.scale,
            "icc_conditional": self.fit.icc,
            "unit_variance_p": self.fit.unit_variance_p(),
            "reml_loglik": self.fit.reml_loglik,
            "converged": self.fit.converged,
            "n_used": self.n_used,
            "n_dropped": self.n_dropped,
            "n_groups": self.fit.n_units,
            "table": _records(self.table),
            "adjusted_means": _records(self.adjusted_means),
        }

    def unit_residuals(self) -> pd.Series:
        """Mean marginal residual ``y - X b`` of each unit: the unit-level residuals (random intercept + noise)."""
        residual = self.fit.y - self.fit.x @ self.fit.beta
        return pd.Series(residual).groupby(self.fit.codes).mean()


def mixed_model(
    data: pd.DataFrame, dv: str, between: list[str], covariates: list[str], group: str, means: bool = True
) -> MixedResult:
    """Fit ``dv ~ covariates + f1 * ... * fk + (1 | group)`` by REML (module docstring) and test every term.

    Terms are tested jointly (all their columns; type III, as each term's columns are tested given all others)
    with Satterthwaite df. Adjusted means: every covariate at its grand mean, equal weight over the levels
    of the other factors (as `tasks.analyse.stats.ancova`), with Satterthwaite df and 95 % t intervals; ``n`` counts
    the units at the level (``means=False``: none, for simulations). Missing values: listwise deletion over
    dv, factors, covariates and group.

    Raises:
        ValueError: a missing or repeated column, no complete rows, a rank-deficient design (empty cell),
            fewer than 2 units, or no residual df.
    """
    between = list(between)
    covariates = _names(covariates, "covariates")
    _check_inputs(data, dv, [*between, group] if group not in between else between, covariates, 2)
    used = data[[dv, *between, *covariates, group]]
    complete = used.notna().all(axis=1).to_numpy()
    used = used[complete]
    if used.empty:
        raise ValueError(missing_message(data, [dv, *between, *covariates, group]))
    if used[group].nunique() < 2:
        raise ValueError(f"the mixed model needs at least 2 units of {group!r}, got {used[group].nunique()}")
    _check_finite(used, [dv, *covariates])
    design = _Design(used, dv, between, covariates)
    fit = reml_fit(design.matrix(), design.y, used[group].astype(str).to_numpy())
    columns = {}
    start = 1
    for name, block in design.blocks.items():
        columns[name] = range(start, start + block.shape[1])
        start += block.shape[1]
    rows = []
    for name, cols in columns.items():
        lmat = np.zeros((len(cols), len(fit.beta)))
        lmat[np.arange(len(cols)), list(cols)] = 1.0
        rows.append({"source": name, **fit.test(lmat)})
    table = pd.DataFrame(rows, columns=["source", "df", "df_den", "F", "p"])
    n_units = {f: used.groupby(f)[group].nunique() for f in between}  # units at each level
    adjusted = _mixed_means(fit, design, n_units) if means else pd.DataFrame(columns=MEANS_COLUMNS)
    return MixedResult(dv, between, covariates, group, table, adjusted, fit, design,
                       len(used), int((~complete).sum()))  # fmt: skip


def _mixed_means(fit: MixedFit, design: _Design, n_units: dict[str, pd.Series]) -> pd.DataFrame:
    import itertools

    if not design.between:
        return pd.DataFrame(columns=MEANS_COLUMNS)
    grid = np.array(list(itertools.product(*(range(len(design.levels[f])) for f in design.between))))
    grid_codes = {f: grid[:, i] for i, f in enumerate(design.between)}
    blocks = design.factor_blocks(grid_codes)
    rows_x = np.hstack([np.ones((len(grid), 1)), np.zeros((len(grid), len(design.covariates))), *blocks.values()])
    records = []
    for f in design.between:
        for code, level in enumerate(design.levels[f]):
            est = fit.estimate(rows_x[grid_codes[f] == code].mean(axis=0))
            n = int(n_units[f].get(level, 0))
            records.append({"factor": f, "level": level, "mean": est["estimate"], **est, "n": n})
    return pd.DataFrame(records)[MEANS_COLUMNS]
