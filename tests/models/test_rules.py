import numpy as np
import pandas as pd
import pytest

from models.rules import (
    AU_COLUMNS,
    EMOTION_PROTOTYPES,
    EMOTIONS,
    LEARNER_STATES,
    MODEL_NAME,
    RuleBaselineWarning,
    emotion_probabilities,
    learner_state_probabilities,
    prototype_scores,
    window_means,
    window_peaks,
)


def pattern(n=2, **aus):
    """n frames, every AU 0 except the given intensities."""
    data = {c: np.zeros(n) for c in AU_COLUMNS}
    for name, value in aus.items():
        data[name] = np.full(n, float(value))
    return data


EMOTION_PATTERNS = {
    "happiness": dict(AU06_r=3, AU12_r=4, AU25_r=1),
    "sadness": dict(AU01_r=3, AU04_r=3, AU15_r=3, AU17_r=2),
    "surprise": dict(AU01_r=3, AU02_r=3, AU05_r=3, AU26_r=3, AU25_r=2),
    "fear": dict(AU01_r=3, AU02_r=3, AU04_r=3, AU05_r=3, AU20_r=3, AU25_r=2, AU26_r=2),
    "anger": dict(AU04_r=3, AU05_r=3, AU07_r=3, AU23_r=3),
    "disgust": dict(AU09_r=3, AU10_r=2, AU15_r=1),
    "neutral": dict(AU45_r=2, AU25_r=1),  # blinking and talking only
}


@pytest.mark.parametrize("emotion", list(EMOTION_PATTERNS))
def test_prototype_pattern_gives_its_emotion(emotion):
    out = emotion_probabilities(pattern(**EMOTION_PATTERNS[emotion]))
    assert (out["label"] == emotion).all()
    assert (out[list(EMOTIONS)].idxmax(axis=1) == emotion).all()
    assert np.allclose(out[list(EMOTIONS)].sum(axis=1), 1.0)
    assert (out["model"] == MODEL_NAME).all() and out.attrs["model"] == MODEL_NAME
    assert "rule baseline" in MODEL_NAME


def test_soft_jaccard_score_hand_computed():
    # happiness slots {12} (weight 2), {6} (weight 1); AU12 = 4 -> 0.8, AU6 = 3 -> 0.6; AU17 = 1 -> 0.2 lies
    # outside the prototype; AU4 = 1 -> 0.2 contradicts it (counted 3 times); AU25 is ignored:
    # score = (2 * 0.8 + 0.6) / (3 + 0.2 + 3 * 0.2) = 2.2 / 3.8
    intensities = pd.DataFrame(pattern(1, AU06_r=3, AU12_r=4, AU17_r=1, AU04_r=1, AU25_r=5))[list(AU_COLUMNS)]
    happiness = [p.label for p in EMOTION_PROTOTYPES].index("happiness")
    assert prototype_scores(intensities.to_numpy(), EMOTION_PROTOTYPES)[0, happiness] == pytest.approx(2.2 / 3.8)


@pytest.mark.parametrize(
    "emotion, aus",
    [
        ("happiness", dict(AU12_r=3)),  # a smile without a measurable cheek raise
        ("sadness", dict(AU15_r=3, AU01_r=1.5)),
        ("surprise", dict(AU01_r=2.5, AU02_r=2.5, AU26_r=3)),
        ("anger", dict(AU04_r=3, AU07_r=2)),
        ("disgust", dict(AU09_r=3)),
        ("fear", dict(AU01_r=3, AU04_r=2, AU20_r=3, AU25_r=2)),
    ],
)
def test_a_slight_core_expression_beats_neutral(emotion, aus):
    """The diagnostic core of a prototype at FACS level B-C is enough; neutral needs the face at rest."""
    assert emotion_probabilities(pattern(**aus))["label"].eq(emotion).all()


def test_a_nose_wrinkle_with_lowered_brows_is_disgust_not_anger():
    """Brow lowerer + nose wrinkler + upper lip raiser (IG 2002 disgust 9+10 with AU4): AU9 is in no anger
    prototype, so it counts against anger and the lowered brow alone does not make it anger."""
    assert emotion_probabilities(pattern(AU04_r=4, AU09_r=2, AU10_r=2))["label"].eq("disgust").all()
    assert emotion_probabilities(pattern(AU04_r=4, AU07_r=2, AU10_r=2))["label"].eq("anger").all()


def test_trace_noise_stays_neutral():
    out = emotion_probabilities(pattern(AU12_r=0.6, AU04_r=0.5, AU10_r=0.7, AU17_r=0.8, AU25_r=3, AU45_r=2))
    assert out["label"].eq("neutral").all()


def test_window_peaks_keep_a_brief_apex():
    """Ten neutral samples then a three-sample smile: the mean halves it, the 0.8 quantile keeps it."""
    window = np.zeros((13, len(AU_COLUMNS)))
    window[10:, AU_COLUMNS.index("AU12_r")] = 4.0
    assert window.mean(axis=0)[AU_COLUMNS.index("AU12_r")] < 1.0
    assert window_peaks(window)[AU_COLUMNS.index("AU12_r")] == pytest.approx(4.0 * 0.6)
    assert window_peaks(np.full((4, len(AU_COLUMNS)), np.nan)).shape == (len(AU_COLUMNS),)


def test_neutral_probability_hand_computed():
    # all AUs 0: six emotion scores 0, neutral 0.2; softmax(scores / 0.1): neutral = e^2 / (e^2 + 6)
    out = emotion_probabilities(pattern(1))
    assert out["neutral"].iloc[0] == pytest.approx(np.e**2 / (np.e**2 + 6))


@pytest.mark.parametrize(
    "state, aus",
    [
        ("confusion", dict(AU04_r=3, AU07_r=3)),
        ("frustration", dict(AU12_r=3, AU14_r=3)),
        ("engagement", dict(AU02_r=3, AU05_r=3)),
        ("boredom", dict()),
    ],
)
def test_learner_state_heuristic(state, aus):
    out = learner_state_probabilities(pattern(**aus))
    assert (out["label"] == state).all()
    assert list(out.columns[:4]) == list(LEARNER_STATES)
    assert (out["model"] == MODEL_NAME).all()


def test_windows_average_frames():
    # 4 frames of AU12 = 0, 2, 4, 6 (6 is clipped to 5); windows of 2 every 2 frames: means 1.0 and 4.5
    data = pattern(4)
    data["AU12_r"] = np.array([0.0, 2.0, 4.0, 6.0])
    means = window_means(data, window=2)
    assert means["AU12_r"].tolist() == [1.0, 4.5]
    assert means[["frame_start", "frame_end"]].to_numpy().tolist() == [[0, 2], [2, 4]]
    assert len(window_means(data, window=2, hop=1)) == 3
    out = emotion_probabilities(pd.DataFrame(pattern(6, AU06_r=3, AU12_r=3)), window=3)
    assert out["frame_start"].tolist() == [0, 3] and (out["label"] == "happiness").all()


def test_missing_columns_and_nan_rows():
    data = pattern(2)
    del data["AU12_r"]
    with pytest.raises(ValueError, match="AU12_r"):
        emotion_probabilities(data)
    data = pattern(2, AU06_r=3, AU12_r=3)
    data["AU06_r"][0] = np.nan
    with pytest.warns(RuleBaselineWarning):
        out = emotion_probabilities(data)
    assert out[list(EMOTIONS)].iloc[0].isna().all() and pd.isna(out["label"].iloc[0])
    assert out["label"].iloc[1] == "happiness"
