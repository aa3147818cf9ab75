"""Grouping levels and the unit of analysis (tasks/analyse/nesting.py), effect-size intervals and Holm
(tasks/analyse/reading.py)."""

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from tasks.analyse.nesting import detect_levels, nested_order, unit_keys
from tasks.analyse.reading import eta_squared_interval


def sessions(per_teacher_factor: bool) -> pd.DataFrame:
    """4 teachers x 3 sessions x 2 students; the factor set per teacher, or per session (varying within teachers)."""
    rows = []
    for t in range(4):
        for s in range(3):
            level = "ab"[t % 2] if per_teacher_factor else "ab"[(t + s) % 2]
            rows += [{"teacher_id": f"t{t}", "session_id": f"t{t}s{s}", "course": "c1", "g": level}] * 2
    return pd.DataFrame(rows)


def test_a_factor_set_per_teacher_makes_the_teacher_the_unit():
    data = sessions(per_teacher_factor=True)
    chain, notes = nested_order(data, ["session_id", "teacher_id", "course"])
    assert chain == ["course", "teacher_id", "session_id"] and notes == []
    levels = detect_levels(data, ["g"], chain)
    assert (levels.unit, levels.detected, levels.levels) == ("teacher_id", "teacher_id", chain[::-1])
    assert levels.counts == {"course": 1, "teacher_id": 4, "session_id": 12}
    assert any(n.startswith("sessions (12) lie within teachers") for n in levels.notes)
    assert any(n.startswith("g vary within courses (1)") for n in levels.notes)


def test_a_factor_varying_within_teachers_makes_the_session_the_unit_and_link_cannot_pick_teachers():
    data = sessions(per_teacher_factor=False)
    levels = detect_levels(data, ["g"], ["teacher_id", "session_id"])
    assert levels.unit == "session_id" and levels.constant["teacher_id"] == []
    with pytest.raises(ValueError, match=r"\['g'\] vary within units of 'teacher_id'"):
        detect_levels(data, ["g"], ["teacher_id", "session_id"], override="teacher_id")


def test_link_override_is_stated():
    levels = detect_levels(sessions(True), ["g"], ["teacher_id", "session_id"], override="session_id")
    assert levels.unit == "session_id" and levels.detected == "teacher_id"
    assert levels.notes[0].startswith("the unit session_id is set by --link and overrides the detected unit teacher_id")


def test_a_level_that_does_not_nest_is_left_out_by_name():
    data = sessions(True)
    data.loc[0, "teacher_id"] = "t3"  # session t0s0 now has two teachers
    chain, notes = nested_order(data, ["session_id", "teacher_id"])
    assert chain == ["session_id"] and notes == [
        "teacher_id is not a grouping level above session_id (session 't0s0' has 2 teachers): not used"
    ]


def test_inner_labels_repeated_across_parents_are_kept_apart():
    data = pd.DataFrame({"school": ["A", "A", "B", "B"], "class": ["1", "1", "1", "1"]})
    keys = unit_keys(data, ["school", "class"])
    assert list(keys["class"]) == ["A/1", "A/1", "B/1", "B/1"] and keys["class"].nunique() == 2


@pytest.mark.parametrize(("f_value", "df1", "df2"), [(0.5, 1, 8), (4.2, 1, 10), (9.0, 2, 30), (25.0, 3, 7)])
def test_eta_squared_interval_inverts_the_noncentral_f(f_value, df1, df2):
    """The bounds are the noncentralities at which the observed F is the 97.5th / 2.5th percentile, mapped by
    lambda / (lambda + df1 + df2 + 1); the lower bound is 0 exactly when p >= 0.025 (the central F)."""
    eta, low, high = eta_squared_interval(f_value, df1, df2)
    assert eta == pytest.approx(f_value * df1 / (f_value * df1 + df2))
    assert 0 <= low <= eta <= high < 1
    n = df1 + df2 + 1
    lam_low, lam_high = low * n / (1 - low), high * n / (1 - high)
    assert stats.ncf.cdf(f_value, df1, df2, lam_high) == pytest.approx(0.025, abs=1e-6)
    p = stats.f.sf(f_value, df1, df2)
    if p >= 0.025:
        assert low == 0
    else:
        assert stats.ncf.cdf(f_value, df1, df2, lam_low) == pytest.approx(0.975, abs=1e-6)
    assert np.isnan(eta_squared_interval(float("nan"), 1, 3)[0])
