"""tasks.analyse.stats.ancova against statsmodels (generated unbalanced designs) and a published example."""

import itertools
import json

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf

from tasks.analyse.stats import (
    MEANS_COLUMNS,
    TABLE_COLUMNS,
    ConstantCovariateWarning,
    DegenerateDesignWarning,
    EmptyCellWarning,
    ResidualDfWarning,
    SingleLevelWarning,
    SingularDesignWarning,
    ancova,
    read_table,
)

RTOL = 1e-8
NO_DEGENERACY = pytest.mark.filterwarnings("error::tasks.analyse.stats.DegenerateDesignWarning")
IGNORE_SINGULAR = pytest.mark.filterwarnings("ignore::tasks.analyse.stats.SingularDesignWarning")
FACTORS = {
    "facial": ["frown", "neutral", "smile"],
    "body": ["closed", "open"],
    "gesture": ["low", "mid", "high"],
}
DESIGNS = [["facial"], ["facial", "body"], ["facial", "body", "gesture"]]
COVARIATES = [["pretest"], ["pretest", "age"]]


def _generate(between: list[str], covariates: list[str], seed: int = 0) -> pd.DataFrame:
    """Unbalanced design: 4-9 rows per cell, covariates that differ by cell (so Type II != Type III)."""
    rng = np.random.default_rng(seed)
    parts = []
    for cell in itertools.product(*(FACTORS[f] for f in between)):
        n = int(rng.integers(4, 10))
        part = pd.DataFrame({f: [level] * n for f, level in zip(between, cell, strict=True)})
        shift = rng.normal(0, 1)
        for i, c in enumerate(covariates):
            part[c] = rng.normal(50 + 3 * shift + 10 * i, 5, n)
        part["score"] = 2 * shift + 0.3 * part[covariates].sum(axis=1) + rng.normal(0, 1.5, n)
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def _formula(between: list[str], covariates: list[str]) -> str:
    return f"score ~ {' + '.join(covariates)} + {' * '.join(f'C({f}, Sum)' for f in between)}"


def _source(statsmodels_term: str) -> str:
    return statsmodels_term.replace("C(", "").replace(", Sum)", "")


@pytest.mark.parametrize("ss_type", [2, 3])
@pytest.mark.parametrize("covariates", COVARIATES, ids=["1cov", "2cov"])
@pytest.mark.parametrize("between", DESIGNS, ids=["1factor", "2factor", "3factor"])
@NO_DEGENERACY
def test_table_matches_statsmodels(between, covariates, ss_type):
    data = _generate(between, covariates)
    # Reference (statsmodels 0.15):
    #   formula = "score ~ pretest [+ age] + C(facial, Sum) [* C(body, Sum) [* C(gesture, Sum)]]"
    #   fit = smf.ols(formula, data).fit()
    #   sm.stats.anova_lm(fit, typ=ss_type)
    fit = smf.ols(_formula(between, covariates), data).fit()
    ref = sm.stats.anova_lm(fit, typ=ss_type).drop(index="Intercept", errors="ignore")
    ref.index = [_source(t) for t in ref.index]

    table = ancova(data, "score", between, covariates, ss_type=ss_type).table.set_index("source")

    assert list(table.columns) == TABLE_COLUMNS[1:]
    assert sorted(table.index) == sorted(ref.index)
    ref = ref.loc[table.index]
    np.testing.assert_allclose(table["ss"], ref["sum_sq"], rtol=RTOL)
    np.testing.assert_array_equal(table["df"], ref["df"])
    np.testing.assert_allclose(table["F"], ref["F"], rtol=RTOL)
    np.testing.assert_allclose(table["p"], ref["PR(>F)"], rtol=RTOL)
    residual = table.loc["Residual", "ss"]
    effects = table.drop(index="Residual")
    np.testing.assert_allclose(effects["np2"], effects["ss"] / (effects["ss"] + residual), rtol=RTOL)


def _with_cells(data: pd.DataFrame, between: list[str]) -> pd.DataFrame:
    return data.assign(cell=data[between].astype(str).agg("|".join, axis=1))


@pytest.mark.parametrize("covariates", COVARIATES, ids=["1cov", "2cov"])
@pytest.mark.parametrize("between", DESIGNS, ids=["1factor", "2factor", "3factor"])
@NO_DEGENERACY
def test_adjusted_means_match_cell_means_model(between, covariates):
    data = _with_cells(_generate(between, covariates, seed=1), between)
    # Independent reference: the cell-means parametrisation of the same model,
    #   fit = smf.ols("score ~ 0 + C(cell) + pretest [+ age]", data).fit()
    # and the adjusted mean of level l of factor f is the t_test of the contrast that averages the cell
    # coefficients with f == l equally and adds each covariate slope times the covariate's grand mean.
    fit = smf.ols(f"score ~ 0 + C(cell) + {' + '.join(covariates)}", data).fit()
    means = ancova(data, "score", between, covariates).adjusted_means

    assert list(means.columns) == MEANS_COLUMNS
    for row in means.itertuples():
        weights = pd.Series(0.0, index=fit.params.index)
        position = between.index(row.factor)
        cells = [c for c in data["cell"].unique() if c.split("|")[position] == row.level]
        weights[[f"C(cell)[{c}]" for c in cells]] = 1 / len(cells)
        weights[covariates] = data[covariates].mean()
        reference = fit.t_test(weights.to_numpy()[None, :])
        np.testing.assert_allclose(row.mean, reference.effect[0], rtol=RTOL)
        np.testing.assert_allclose(row.se, reference.sd[0, 0], rtol=RTOL)
        assert row.n == int((data[row.factor] == row.level).sum())


@pytest.mark.parametrize("covariates", COVARIATES, ids=["1cov", "2cov"])
@pytest.mark.parametrize("between", DESIGNS, ids=["1factor", "2factor", "3factor"])
@NO_DEGENERACY
def test_slopes_test_matches_nested_model_comparison(between, covariates):
    data = _with_cells(_generate(between, covariates, seed=2), between)
    slopes = ancova(data, "score", between, covariates).slopes.set_index("source")
    # Reference (statsmodels 0.15), for each covariate c, separate slopes per cell for every covariate
    # against the same model with a common slope for c:
    #   full = smf.ols("score ~ C(cell) + pretest:C(cell) [+ age:C(cell)]", data).fit()
    #   reduced = smf.ols("score ~ C(cell) + pretest [+ age:C(cell)]", data).fit()
    #   sm.stats.anova_lm(reduced, full)
    full = smf.ols("score ~ C(cell) + " + " + ".join(f"{c}:C(cell)" for c in covariates), data).fit()
    for covariate, row in zip(covariates, slopes.drop(index="Residual").itertuples(), strict=True):
        others = [f"{c}:C(cell)" for c in covariates if c != covariate]
        reduced = smf.ols(" + ".join(["score ~ C(cell)", covariate, *others]), data).fit()
        ref = sm.stats.anova_lm(reduced, full).iloc[1]
        assert row.Index.endswith(f":{covariate}")
        np.testing.assert_allclose(row.ss, ref["ss_diff"], rtol=RTOL)
        assert row.df == ref["df_diff"]
        np.testing.assert_allclose(row.F, ref["F"], rtol=RTOL)
        np.testing.assert_allclose(row.p, ref["Pr(>F)"], rtol=RTOL)
    np.testing.assert_allclose(slopes.loc["Residual", "ss"], full.ssr, rtol=RTOL)
    assert slopes.loc["Residual", "df"] == full.df_resid


# Published example: Field, A., Miles, J. & Field, Z. (2012). Discovering Statistics Using R. London: Sage.
# Chapter 11 (Analysis of covariance), Viagra data (file ViagraCovariate.dat): libido by dose
# (placebo n=9, low n=8, high n=13) with partner's libido as covariate. The book's R code:
#   contrasts(viagraData$dose) <- cbind(c(-2,1,1), c(0,-1,1))
#   viagraModel <- aov(libido ~ partnerLibido + dose, data = viagraData)
#   Anova(viagraModel, type = "III")                  # car
#   adjustedMeans <- effect("dose", viagraModel, se = TRUE); adjustedMeans$se   # effects
#   hoRS <- update(viagraModel, .~. + partnerLibido:dose); Anova(hoRS, type = "III")
# Printed: partnerLibido SS 15.1, F(1, 26) = 4.96, p = .035; dose SS 25.2, F(2, 26) = 4.14, p = .027;
# Residuals SS 79.0, df 26; adjusted means 2.93, 4.71, 5.15 with se 0.60, 0.62, 0.50;
# homogeneity of slopes partnerLibido:dose SS 20.4, F(2, 24) = 4.18, p = .028, Residuals 58.6, df 24.
# Tolerance: half a unit in the last printed digit.
VIAGRA = pd.DataFrame(
    {
        "dose": pd.Categorical(["placebo"] * 9 + ["low"] * 8 + ["high"] * 13, categories=["placebo", "low", "high"]),
        "libido": [3, 2, 5, 2, 2, 2, 7, 2, 4, 7, 5, 3, 4, 4, 7, 5, 4, 9, 2, 6, 3, 4, 4, 4, 6, 4, 6, 2, 8, 5],
        "partnerLibido": [
            4,
            1,
            5,
            1,
            2,
            2,
            7,
            4,
            5,
            5,
            3,
            1,
            2,
            2,
            6,
            4,
            2,
            1,
            3,
            5,
            4,
            3,
            3,
            2,
            0,
            1,
            3,
            0,
            1,
            0,
        ],
    }
)


@NO_DEGENERACY
def test_published_field_2012_viagra_example():
    result = ancova(VIAGRA, "libido", "dose", "partnerLibido", ss_type=3)
    table = result.table.set_index("source")
    assert table.loc["partnerLibido", "ss"] == pytest.approx(15.1, abs=0.05)
    assert table.loc["partnerLibido", "F"] == pytest.approx(4.96, abs=0.005)
    assert table.loc["partnerLibido", "p"] == pytest.approx(0.035, abs=0.0005)
    assert table.loc["dose", "ss"] == pytest.approx(25.2, abs=0.05)
    assert table.loc["dose", "F"] == pytest.approx(4.14, abs=0.005)
    assert table.loc["dose", "p"] == pytest.approx(0.027, abs=0.0005)
    assert table.loc["Residual", "ss"] == pytest.approx(79.0, abs=0.05)
    assert list(table["df"]) == [1, 2, 26]
    means = result.adjusted_means
    assert list(means["level"]) == ["placebo", "low", "high"]
    np.testing.assert_allclose(means["mean"], [2.93, 4.71, 5.15], atol=0.005)
    np.testing.assert_allclose(means["se"], [0.60, 0.62, 0.50], atol=0.005)
    assert list(means["n"]) == [9, 8, 13]
    slopes = result.slopes.set_index("source")
    assert slopes.loc["dose:partnerLibido", "ss"] == pytest.approx(20.4, abs=0.05)
    assert slopes.loc["dose:partnerLibido", "F"] == pytest.approx(4.18, abs=0.005)
    assert slopes.loc["dose:partnerLibido", "p"] == pytest.approx(0.028, abs=0.0005)
    assert slopes.loc["Residual", "ss"] == pytest.approx(58.6, abs=0.05)
    assert slopes.loc["Residual", "df"] == 24


def test_one_factor_type_ii_equals_type_iii():
    two = ancova(VIAGRA, "libido", "dose", "partnerLibido", ss_type=2).table
    three = ancova(VIAGRA, "libido", "dose", "partnerLibido", ss_type=3).table
    pd.testing.assert_frame_equal(two, three, rtol=1e-10)


def test_listwise_deletion_counts_dropped_rows():
    data = _generate(["facial", "body"], ["pretest"], seed=3)
    holes = data.copy()
    holes.loc[0, "score"] = np.nan
    holes.loc[5, "pretest"] = np.nan
    holes.loc[9, "body"] = None
    result = ancova(holes, "score", ["facial", "body"], "pretest")
    assert (result.n_used, result.n_dropped) == (len(data) - 3, 3)
    expected = ancova(data.drop(index=[0, 5, 9]), "score", ["facial", "body"], "pretest")
    pd.testing.assert_frame_equal(result.table, expected.table)


def test_to_dict_is_json_with_nan_as_none():
    result = ancova(VIAGRA, "libido", "dose", "partnerLibido")
    payload = json.loads(json.dumps(result.to_dict()))
    assert payload["n_used"] == 30 and payload["n_dropped"] == 0
    assert payload["table"][-1] == {
        "source": "Residual",
        "ss": pytest.approx(79.047, abs=1e-3),
        "df": 26,
        "ms": pytest.approx(3.0403, abs=1e-4),
        "F": None,
        "p": None,
        "np2": None,
    }
    assert payload["adjusted_means"][0]["level"] == "placebo"


def _two_by_two(seed: int = 4) -> pd.DataFrame:
    return _generate(["facial", "body"], ["pretest"], seed=seed).query("facial != 'neutral'")


def test_single_level_factor_warns_and_gives_nan():
    data = _two_by_two().query("body == 'open'")
    with pytest.warns(SingleLevelWarning, match="factor 'body' has a single level 'open'"):
        table = ancova(data, "score", ["facial", "body"], "pretest").table.set_index("source")
    assert table.loc[["body", "facial:body"], ["ss", "F", "p", "np2"]].isna().all().all()
    assert list(table.loc[["body", "facial:body"], "df"]) == [0, 0]
    assert np.isfinite(table.loc["facial", "F"])


@IGNORE_SINGULAR
def test_empty_cell_warns_and_gives_nan():
    data = _two_by_two().query("not (facial == 'smile' and body == 'closed')")
    with pytest.warns(EmptyCellWarning, match="facial='smile', body='closed'"):
        result = ancova(data, "score", ["facial", "body"], "pretest", ss_type=3)
    table = result.table.set_index("source")
    assert np.isnan(table.loc["facial:body", "F"])
    means = result.adjusted_means.set_index(["factor", "level"])
    assert np.isnan(means.loc[("facial", "smile"), "mean"])
    assert np.isnan(means.loc[("body", "closed"), "mean"])


@IGNORE_SINGULAR
def test_empty_cell_interaction_is_reported_singular():
    data = _two_by_two().query("not (facial == 'smile' and body == 'closed')")
    with (
        pytest.warns(EmptyCellWarning),
        pytest.warns(SingularDesignWarning, match="'facial:body' has 0 testable"),
    ):
        ancova(data, "score", ["facial", "body"], "pretest", ss_type=2)


def test_constant_covariate_warns_and_gives_nan():
    data = _two_by_two().assign(pretest=7.0)
    with pytest.warns(ConstantCovariateWarning, match="covariate 'pretest' is constant"):
        result = ancova(data, "score", ["facial", "body"], "pretest")
    table = result.table.set_index("source")
    assert np.isnan(table.loc["pretest", "F"])
    assert np.isfinite(table.loc["facial", "F"])
    assert result.slopes[["F", "p"]].iloc[0].isna().all()


@IGNORE_SINGULAR
def test_collinear_covariates_warn_singular_and_give_nan():
    data = _two_by_two().assign(doubled=lambda d: 2 * d["pretest"] + 1)
    with pytest.warns(SingularDesignWarning, match="term 'doubled' has 0 testable df of 1"):
        table = ancova(data, "score", ["facial", "body"], ["pretest", "doubled"]).table.set_index("source")
    assert table.loc[["pretest", "doubled"], "F"].isna().all()


@IGNORE_SINGULAR
def test_no_residual_df_warns_and_gives_nan():
    data = pd.DataFrame({"group": ["a", "a", "b"], "x": [0.0, 1.0, 5.0], "y": [1.0, 2.0, 4.0]})
    with pytest.warns(ResidualDfWarning, match="no residual df: 3 rows for 3 model parameters"):
        table = ancova(data, "y", "group", "x").table
    assert table[["F", "p", "np2"]].isna().all().all()


def test_constant_dv_warns_and_gives_nan():
    data = _two_by_two().assign(score=3.0)
    with pytest.warns(DegenerateDesignWarning, match="dv 'score' is constant"):
        table = ancova(data, "score", ["facial", "body"], "pretest").table
    assert table[["F", "p", "np2"]].isna().all().all()


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"dv": "missing_col"}, ValueError, r"columns not in data: \['missing_col'\]"),
        ({"between": "body", "covariates": "facial"}, TypeError, "column 'facial' must be numeric"),
        ({"between": "pretest"}, ValueError, r"used more than once .*\['pretest'\]"),
        ({"ss_type": 1}, ValueError, "ss_type must be 2 or 3, got 1"),
        ({"between": 3}, TypeError, "between must be a column name"),
        ({"covariates": []}, ValueError, "covariates needs at least one column name"),
    ],
)
def test_invalid_arguments_raise(kwargs, error, message):
    arguments = {"dv": "score", "between": ["facial", "body"], "covariates": "pretest", **kwargs}
    with pytest.raises(error, match=message):
        ancova(_two_by_two(), **arguments)


def test_bad_data_raise():
    with pytest.raises(TypeError, match="data must be a pandas DataFrame"):
        ancova({"score": [1.0]}, "score", "facial", "pretest")
    infinite = _two_by_two().reset_index(drop=True)
    infinite.loc[2, "pretest"] = np.inf
    with pytest.raises(ValueError, match="column 'pretest' has an infinite value at index 2"):
        ancova(infinite, "score", "facial", "pretest")
    empty = _two_by_two().assign(pretest=np.nan)
    with pytest.raises(ValueError, match="no complete rows"):
        ancova(empty, "score", "facial", "pretest")


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_read_table_round_trip(tmp_path, suffix):
    path = tmp_path / f"scores{suffix}"
    VIAGRA.astype({"dose": str}).to_csv(path, index=False) if suffix == ".csv" else VIAGRA.to_parquet(path)
    frame = read_table(path)
    assert list(frame.columns) == list(VIAGRA.columns)
    assert frame["libido"].tolist() == VIAGRA["libido"].tolist()


def test_read_table_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_table(tmp_path / "absent.csv")
    (tmp_path / "scores.xlsx").write_text("x")
    with pytest.raises(ValueError, match="unsupported file type '.xlsx'"):
        read_table(tmp_path / "scores.xlsx")
    (tmp_path / "broken.parquet").write_text("not parquet")
    with pytest.raises(ValueError, match="cannot read as parquet"):
        read_table(tmp_path / "broken.parquet")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(ValueError, match="cannot read as csv"):
        read_table(tmp_path / "empty.csv")


# units of analysis --------------------------------------------------------------------------------------
def test_unit_means_average_each_unit_and_refuse_factors_that_vary_within_units():
    from tasks.analyse.stats import unit_means

    rng = np.random.default_rng(2)
    data = pd.DataFrame({"unit": np.repeat([f"u{j:02d}" for j in range(12)], 5),
                         "facial_group": np.repeat(["positive", "neutral"] * 6, 5), "pretest": rng.normal(50, 5, 60),
                         "score": rng.normal(size=60)})  # fmt: skip
    means = unit_means(data, "score", ["facial_group"], ["pretest"], "unit")
    assert len(means) == 12 and (means["n_students"] == 5).all()
    first = data[data["unit"] == "u00"]
    assert means.loc[0, "score"] == pytest.approx(first["score"].mean(), rel=1e-12)
    assert means.loc[0, "pretest"] == pytest.approx(first["pretest"].mean(), rel=1e-12)
    with pytest.raises(ValueError, match="vary within units"):
        unit_means(data.assign(facial_group=np.tile(["a", "b"], 30)), "score", ["facial_group"], ["pretest"], "unit")
