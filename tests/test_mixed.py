"""The REML random-intercept model and its Satterthwaite df (tasks/analyse/mixed.py)."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import statsmodels
import statsmodels.formula.api as smf

from tasks.analyse.mixed import mixed_model, reml_fit


def students(sizes: list[int], seed: int, icc: float = 0.3, pretest: str = "none") -> pd.DataFrame:
    """Units with a unit-level 2 x 2 design (cells cycle over units), ``sizes[j]`` students in unit j; pretest
    ``none``, ``within`` (centred within each unit: a purely within-unit covariate) or ``raw``."""
    rng = np.random.default_rng(seed)
    rows = []
    for j, size in enumerate(sizes):
        u = rng.normal(0, np.sqrt(icc))
        x = rng.normal(50, 5, size)
        if pretest == "within":
            x = x - x.mean()
        for i in range(size):
            rows.append({"unit": f"u{j:02d}", "facial": ("pos", "neu")[j % 2], "body": ("exp", "still")[(j // 2) % 2],
                         "pretest": x[i], "y": 0.05 * x[i] + u + rng.normal(0, np.sqrt(1 - icc))})  # fmt: skip
    return pd.DataFrame(rows)


def test_reml_reproduces_the_published_dietox_example():
    """statsmodels' documented MixedLM example (72 pigs, 861 weighings): ``smf.mixedlm("Weight ~ Time", data,
    groups=data["Pig"]).fit()`` prints Scale 11.3669, Log-Likelihood -2404.7753, Intercept 15.724 (0.788),
    Time 6.943 (0.033), Group Var 40.394 (statsmodels docs, examples/notebooks/mixed_lm_example.ipynb; the data
    ship inside statsmodels). Tolerance 1e-4 relative (the printed digits); Time's se to its 3 printed decimals.
    The REML likelihood depends on how X is scaled, so it is compared on the raw Time column."""
    data = pd.read_csv(Path(statsmodels.__file__).parent / "regression" / "tests" / "results" / "dietox.csv")
    x = np.column_stack([np.ones(len(data)), data["Time"].to_numpy(float)])
    fit = reml_fit(x, data["Weight"].to_numpy(float), data["Pig"].to_numpy())
    se = np.sqrt(np.diag(fit.cov))
    assert fit.converged and (fit.n, fit.n_units) == (861, 72)
    assert fit.scale == pytest.approx(11.3669, rel=1e-4) and fit.group_var == pytest.approx(40.394, rel=1e-4)
    assert fit.reml_loglik == pytest.approx(-2404.7753, rel=1e-6)
    np.testing.assert_allclose(fit.beta, [15.724, 6.943], rtol=1e-4)
    assert se[0] == pytest.approx(0.788, rel=1e-3) and se[1] == pytest.approx(0.033, abs=5e-4)


def test_mixed_model_matches_statsmodels_with_sum_contrasts():
    """Same model through statsmodels' formula interface (patsy's Sum coding = ours): the variance components
    agree, and each 1-df term's F is the GLS Wald statistic b^2 / C_ii with ``C = (X'V^-1 X)^-1`` built densely
    from statsmodels' estimates (as lme4 reports it; statsmodels' own se come from the joint Hessian instead)."""
    data = students([4, 6, 5, 7, 3, 8, 5, 6, 4, 7, 6, 5], seed=2, pretest="raw")
    result = mixed_model(data, "y", ["facial", "body"], ["pretest"], "unit")
    ref = smf.mixedlm("y ~ pretest + C(facial, Sum) * C(body, Sum)", data, groups=data["unit"]).fit(reml=True)
    assert result.fit.group_var == pytest.approx(float(ref.cov_re.iloc[0, 0]), rel=1e-4)
    assert result.fit.scale == pytest.approx(ref.scale, rel=1e-5)
    z = (data["unit"].to_numpy()[:, None] == np.unique(data["unit"])[None, :]).astype(float)
    v = float(ref.cov_re.iloc[0, 0]) * z @ z.T + ref.scale * np.eye(len(data))
    x = ref.model.exog
    c = np.linalg.inv(x.T @ np.linalg.solve(v, x))
    b = ref.fe_params.to_numpy()
    wald = b**2 / np.diag(c)  # patsy's order: Intercept, facial, body, facial:body, pretest
    table = result.table.set_index("source")
    for source, column in {"pretest": 4, "facial": 1, "body": 2, "facial:body": 3}.items():
        assert table.loc[source, "F"] == pytest.approx(wald[column], rel=1e-4)


def test_satterthwaite_df_of_a_balanced_design_is_the_between_unit_df():
    """Balanced: 12 units x 5 students, a unit-level 2 x 2 design, a covariate centred within units. The
    between-unit terms are tested against the between-unit mean square: df = units - between parameters
    = 12 - 4 = 8 exactly; the within-unit covariate against the within mean square: N - units - 1 = 47."""
    data = students([5] * 12, seed=3, pretest="within")
    table = mixed_model(data, "y", ["facial", "body"], ["pretest"], "unit").table.set_index("source")
    assert table.loc[["facial", "body", "facial:body"], "df_den"].to_numpy() == pytest.approx([8, 8, 8], rel=1e-6)
    assert table.loc["pretest", "df_den"] == pytest.approx(47, rel=1e-6)


def dense_satterthwaite(fit, lvec: np.ndarray, step: float = 1e-5) -> float:
    """The textbook definition, computed independently of mixed.py's per-unit formulas: dense V = s2_u ZZ' +
    s2 I, C = (X'V^-1 X)^-1, the gradient of l'Cl by central differences in (s2_u, s2), A = inverse of the
    expected REML information tr(P V_a P V_b) / 2 built from dense N x N matrices."""
    x, n = fit.x, fit.n
    z = np.zeros((n, fit.n_units))
    z[np.arange(n), fit.codes] = 1.0

    def variance(theta):
        v = theta[0] * z @ z.T + theta[1] * np.eye(n)
        return float(lvec @ np.linalg.inv(x.T @ np.linalg.solve(v, x)) @ lvec)

    theta = np.array([fit.group_var, fit.scale])
    grad = np.array([(variance(theta + step * e) - variance(theta - step * e)) / (2 * step) for e in np.eye(2)])
    vinv = np.linalg.inv(theta[0] * z @ z.T + theta[1] * np.eye(n))
    p = vinv - vinv @ x @ np.linalg.inv(x.T @ vinv @ x) @ x.T @ vinv
    derivatives = [z @ z.T, np.eye(n)]
    info = 0.5 * np.array([[np.trace(p @ a @ p @ b) for b in derivatives] for a in derivatives])
    return 2 * variance(theta) ** 2 / float(grad @ np.linalg.inv(info) @ grad)


def test_satterthwaite_df_of_an_unbalanced_design_matches_the_dense_textbook_computation():
    data = students([3, 9, 4, 12, 6, 2, 10, 5, 7, 4], seed=4, pretest="raw")
    result = mixed_model(data, "y", ["facial", "body"], ["pretest"], "unit")
    table = result.table.set_index("source")
    assert 0 < result.fit.group_var  # interior estimate: the df formula's regular case
    for source, column in {"pretest": 1, "facial": 2, "body": 3, "facial:body": 4}.items():
        lvec = np.eye(len(result.fit.beta))[column]
        assert table.loc[source, "df_den"] == pytest.approx(dense_satterthwaite(result.fit, lvec), rel=1e-5)
    # a between-unit term: near 10 units - 5 between-unit parameters (the raw pretest varies between units too),
    # far from the 62 students
    assert 4 < table.loc["facial", "df_den"] < 8


def test_adjusted_means_come_with_intervals_from_the_mixed_model():
    data = students([6] * 8, seed=5, pretest="raw")
    result = mixed_model(data, "y", ["facial", "body"], ["pretest"], "unit")
    means = result.adjusted_means.set_index(["factor", "level"])
    row = means.loc[("facial", "pos")]
    half = row["ci_high"] - row["mean"]
    assert half == pytest.approx(row["se"] * __import__("scipy").stats.t.ppf(0.975, row["df"]), rel=1e-9)
    assert row["n"] == 4 and row["df"] < 10  # 4 units at the level; df near the between-unit df, not 48 students


def test_at_the_boundary_the_df_are_the_residual_df_of_least_squares():
    """Every unit has the same students' deviations around its cell mean, so the units do not differ beyond the
    cells: REML puts the unit variance at 0, the model is least squares, and the df of every term are N - p
    = 48 - 5 (as lmerTest in lme4's sd parametrization: at s_u = 0 the contrast variance depends on s2 only)."""
    deviations = np.array([-1.3, -0.4, 0.2, 0.6, 0.9, 0.0])
    rows = [{"unit": f"u{j}", "facial": ("pos", "neu")[j % 2], "body": ("exp", "still")[(j // 2) % 2],
             "pretest": k, "y": (j % 2) + d} for j in range(8) for k, d in enumerate(deviations)]  # fmt: skip
    result = mixed_model(pd.DataFrame(rows), "y", ["facial", "body"], ["pretest"], "unit")
    assert result.fit.group_var == 0.0 and result.fit.unit_variance_p() == 1.0
    np.testing.assert_allclose(result.table["df_den"], 43.0, rtol=1e-9)
