"""AU-rule baseline: basic emotions and learner states from OpenFace AU intensities (no learning).

This is a rule baseline, not a trained model: every output carries ``MODEL_NAME``, which says so.

Input: per-frame AU intensities with OpenFace 2 names (``AU_COLUMNS``, 0-5 scale) as a DataFrame or a
dict of numpy arrays. Intensities are clipped to [0, 5] and divided by 5.

Scoring. Each label has a prototype: a list of slots, each slot a set of alternative AUs (its activation
is the largest of them) with a weight (how diagnostic the slot is of the emotion), plus AUs allowed to
co-occur. The score is a weighted soft Jaccard (Tanimoto) overlap

    score = sum(weight * slot activation) / (sum of weights + sum of activations of AUs outside the prototype)

so a label is strongest with all of its AUs, can win on its diagnostic core alone (e.g. AU12 of a smile
without a measurable AU06), and loses to labels that explain more of the face. AU25 / AU26 (lips
part, jaw drop: speech, and a teacher talks most of the time) and AU45 (blink) never count against a
prototype. ``neutral`` (and ``boredom`` for learner states) scores a constant ``baseline`` (0.2 = every
prototype AU at intensity 1, the FACS "trace" level), so it wins only when no prototype is present above
the trace level on (weighted) average.
Probabilities are ``softmax(scores / temperature)``; temperature 0.1 is our choice, not calibrated.

Emotion prototypes (OpenFace lacks AU11, 16, 22, 24, 27, so variants needing them are reduced):
- Ekman & Friesen, *Facial Action Coding System*, 1978, and EMFACS (Friesen & Ekman, 1983);
- Ekman, Friesen & Hager, *FACS Investigator's Guide*, 2002, table of emotion prototypes and major
  variants (cited below as IG 2002).

Learner states are a HEURISTIC, not a validated detector. The AU associations come from observational
studies of students with a tutoring system (D'Mello, Graesser and colleagues), which report small,
population-level effects on a few dozen students; they were not derived for classroom video or for
teachers, and engagement has no AU signature there at all (see each prototype's ``source``).
"""

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

MODEL_NAME = "au-rules (rule baseline)"

AU_NUMBERS = (1, 2, 4, 5, 6, 7, 9, 10, 12, 14, 15, 17, 20, 23, 25, 26, 45)
AU_COLUMNS = tuple(f"AU{n:02d}_r" for n in AU_NUMBERS)
IGNORED_AUS = (25, 26, 45)  # never counted against a prototype: speech and blinks
EMOTIONS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
LEARNER_STATES = ("boredom", "engagement", "confusion", "frustration")


class RuleBaselineWarning(RuntimeWarning):
    """Frames or windows without usable AU values: their probabilities are NaN."""


@dataclass(frozen=True)
class Prototype:
    """``slots``: AUs of the prototype (alternatives within a slot), ``weights`` one per slot (default 1);
    ``allowed``: may co-occur without counting against it; ``contradicts``: AUs that no prototype or major
    variant of the emotion contains and that another emotion's display is made of (e.g. the lowered brow
    of anger and disgust in a "smile"): they count against it :data:`CONTRADICTION_WEIGHT` times."""

    label: str
    slots: tuple[tuple[int, ...], ...]
    source: str
    allowed: tuple[int, ...] = ()
    weights: tuple[float, ...] = ()
    contradicts: tuple[int, ...] = ()

    def slot_weights(self) -> tuple[float, ...]:
        if self.weights and len(self.weights) != len(self.slots):
            raise ValueError(f"{self.label}: {len(self.weights)} weights for {len(self.slots)} slots")
        return self.weights or (1.0,) * len(self.slots)


EMOTION_PROTOTYPES = (
    Prototype(
        "anger",
        ((4,), (5, 7), (23, 17)),
        "IG 2002 anger prototypes 4+5+7+23, 4+5+7+17+23 (+10, +22, +24, +25/26): brow lowerer (weight 2, "
        "Ekman & Friesen 1975 'Unmasking the face': lowered, drawn-together brows in every anger display), "
        "upper-lid raise or lid tightening, lips tightened or chin raised (AU24 presser is not in OpenFace); the "
        "nose wrinkler AU9, in no anger prototype and the core of disgust, counts against it",
        allowed=(5, 7, 10, 17, 23),
        weights=(2.0, 1.0, 1.0),
        contradicts=(9,),
    ),
    Prototype(
        "disgust",
        ((9, 10), (15, 17)),
        "IG 2002 disgust prototypes 9, 9+17, 9+16+15, 10, 10+17: nose wrinkler or upper lip raiser (weight 2), "
        "with lip corner depressor or chin raiser; AU9 and a strong AU10 themselves push the infraorbital "
        "triangle and the cheeks up (FACS 2002), which reads as AU6, so AU6 is allowed",
        allowed=(4, 6, 7, 15, 17),
        weights=(2.0, 0.5),
    ),
    Prototype(
        "fear",
        ((1,), (2,), (4,), (5,), (20,), (25, 26)),
        "IG 2002 fear prototype 1+2+4+5+20+25/26/27; AU7 often listed with it (EMFACS tables); lip stretcher "
        "AU20 and brow lowerer AU4 with the brow raise are what tells it from surprise (weight 2 and 1.5)",
        allowed=(7,),
        weights=(1.0, 0.5, 1.5, 1.0, 2.0, 0.5),
    ),
    Prototype(
        "happiness",
        ((12,), (6,)),
        "EMFACS and IG 2002 happiness prototype 6+12; the lip corner puller is the core (weight 2), the "
        "cheek raiser (Duchenne marker) supports it; lips part (25) in open smiles is ignored",
        allowed=(7, 10, 14),
        weights=(2.0, 1.0),
        contradicts=(4, 15),
    ),
    Prototype(
        "sadness",
        ((15,), (1,), (4,)),
        "IG 2002 sadness prototypes 1+4+15, 1+4+15+17, 6+15 (1+4+11+15 needs AU11, not in OpenFace): lip "
        "corner depressor (weight 1.5) with the oblique brow of inner brow raiser + brow lowerer",
        allowed=(6, 17),
        weights=(1.5, 1.0, 1.0),
    ),
    Prototype(
        "surprise",
        ((1,), (2,), (5,), (26, 25)),
        "IG 2002 surprise prototype 1+2+5B+26 (or 27; 25 with it): brows raised (inner and outer), upper "
        "lid raised, jaw dropped or lips parted",
        weights=(1.0, 1.0, 1.0, 1.0),
        contradicts=(4,),
    ),
)

LEARNER_PROTOTYPES = (
    Prototype(
        "engagement",
        ((1, 2), (5,)),
        "our assumption: brow raise and upper-lid raise as heightened attention; D'Mello & Graesser's "
        "studies report no reliable AU signature for engagement / flow",
        allowed=(6, 12),
    ),
    Prototype(
        "confusion",
        ((4,), (7,)),
        "McDaniel, D'Mello, King, Chipman, Tapp & Graesser 2007 (CogSci) and Craig, D'Mello, Witherspoon "
        "& Graesser 2008 (Cognition & Emotion 22(5)): brow lowerer AU4 and lid tightener AU7",
        allowed=(1,),
    ),
    Prototype(
        "frustration",
        ((12,), (14,)),
        "McDaniel et al. 2007: lip corner puller AU12 and dimpler AU14 with frustration; Grafsgaard et "
        "al. 2013 (EDM) also link AU14 to frustration",
        allowed=(1, 2, 4),
    ),
)
# boredom: the baseline label. McDaniel et al. 2007 and Craig et al. 2008 found boredom
# indistinguishable from a neutral face by AUs, so it wins when no other learner-state pattern is present.


def au_matrix(au: pd.DataFrame | Mapping[str, np.ndarray]) -> np.ndarray:
    """AU intensities as a float array (N, 17) in ``AU_COLUMNS`` order, clipped to [0, 5]; NaN kept.

    Raises ValueError naming the missing columns and when the columns differ in length.
    """
    missing = [c for c in AU_COLUMNS if c not in au]
    if missing:
        raise ValueError(f"AU intensities lack columns {missing}; expected OpenFace names {list(AU_COLUMNS)}")
    columns = [np.asarray(au[c], dtype=float).reshape(-1) for c in AU_COLUMNS]
    lengths = {c: len(v) for c, v in zip(AU_COLUMNS, columns, strict=True)}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"AU columns differ in length: {lengths}")
    return np.clip(np.stack(columns, axis=1), 0.0, 5.0)


CONTRADICTION_WEIGHT = 3.0


def prototype_scores(intensities: np.ndarray, prototypes: tuple[Prototype, ...]) -> np.ndarray:
    """Soft-Jaccard score of each prototype, shape (N, len(prototypes)), from intensities (N, 17)."""
    p = intensities / 5.0
    index = {au: i for i, au in enumerate(AU_NUMBERS)}
    scores = []
    for proto in prototypes:
        inside = {au for slot in proto.slots for au in slot} | set(proto.allowed) | set(IGNORED_AUS)
        outside = [index[au] for au in AU_NUMBERS if au not in inside]
        weights = proto.slot_weights()
        slots = zip(weights, proto.slots, strict=True)
        matched = sum(w * p[:, [index[au] for au in slot]].max(axis=1) for w, slot in slots)
        against = p[:, outside].sum(axis=1) + (CONTRADICTION_WEIGHT - 1) * p[
            :, [index[au] for au in proto.contradicts]
        ].sum(axis=1)
        scores.append(matched / (sum(weights) + against))
    return np.stack(scores, axis=1)


WINDOW_QUANTILE = 0.8
"""Per-AU quantile that summarises a window for the rules: high enough that a short apex at the end of a
neutral onset (a brief expression) is not averaged away, below the maximum so that one noisy sample is not
taken for an expression."""


def window_peaks(intensities: np.ndarray, quantile: float = WINDOW_QUANTILE) -> np.ndarray:
    """(T, 17) intensities of one window -> (17,) per-AU ``quantile`` over its samples (NaN samples skipped)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN AU stays NaN; the classifier reports it
        return np.nanquantile(np.asarray(intensities, dtype=float), quantile, axis=0)


def window_means(au: pd.DataFrame | Mapping[str, np.ndarray], window: int, hop: int | None = None) -> pd.DataFrame:
    """Mean AU intensities over windows of ``window`` frames every ``hop`` frames (default: no overlap).

    Only complete windows are returned; ``frame_start`` / ``frame_end`` are row positions (end
    exclusive). Frames with NaN are skipped in the mean; an all-NaN window stays NaN.
    """
    if window < 1 or (hop is not None and hop < 1):
        raise ValueError(f"window and hop must be positive, got window={window}, hop={hop}")
    values = au_matrix(au)
    hop = window if hop is None else hop
    starts = np.arange(0, len(values) - window + 1, hop)
    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN windows are reported by the classifier
        for s in starts:
            rows.append(np.nanmean(values[s : s + window], axis=0))
    means = pd.DataFrame(np.array(rows).reshape(-1, len(AU_COLUMNS)), columns=list(AU_COLUMNS))
    means.insert(0, "frame_start", starts)
    means.insert(1, "frame_end", starts + window)
    return means


def _classify(
    au: pd.DataFrame | Mapping[str, np.ndarray],
    labels: tuple[str, ...],
    prototypes: tuple[Prototype, ...],
    window: int | None,
    hop: int | None,
    temperature: float,
    baseline: float,
) -> pd.DataFrame:
    frames = window_means(au, window, hop) if window is not None else None
    intensities = au_matrix(frames if frames is not None else au)
    scores = dict(zip([p.label for p in prototypes], prototype_scores(intensities, prototypes).T, strict=True))
    base_label = next(label for label in labels if label not in scores)
    scores[base_label] = np.full(len(intensities), baseline)
    logits = np.stack([scores[label] for label in labels], axis=1) / temperature  # (N, labels)
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    bad = np.isnan(probs).any(axis=1)
    if bad.any():
        warnings.warn(
            f"{bad.sum()} of {len(probs)} rows have NaN AU intensities; their probabilities are NaN",
            RuleBaselineWarning,
            stacklevel=3,
        )
    out = pd.DataFrame(probs, columns=list(labels))
    if frames is not None:
        out.insert(0, "frame_start", frames["frame_start"].to_numpy())
        out.insert(1, "frame_end", frames["frame_end"].to_numpy())
    top = np.nan_to_num(probs).argmax(axis=1)
    out["label"] = pd.Series(np.array(labels, dtype=object)[top]).where(~bad, None)
    out["model"] = MODEL_NAME
    out.attrs["model"] = MODEL_NAME
    return out


def emotion_probabilities(
    au: pd.DataFrame | Mapping[str, np.ndarray],
    *,
    window: int | None = None,
    hop: int | None = None,
    temperature: float = 0.1,
    baseline: float = 0.2,
) -> pd.DataFrame:
    """Probabilities over ``EMOTIONS`` per frame, or per window of mean intensities when ``window`` is set.

    Returns one row per frame (or window, with ``frame_start`` / ``frame_end``), a column per emotion,
    ``label`` (argmax) and ``model`` (= ``MODEL_NAME``, also in ``attrs["model"]``). Rows with NaN
    intensities get NaN probabilities, label None and a ``RuleBaselineWarning``.
    """
    return _classify(au, EMOTIONS, EMOTION_PROTOTYPES, window, hop, temperature, baseline)


def learner_state_probabilities(
    au: pd.DataFrame | Mapping[str, np.ndarray],
    *,
    window: int | None = None,
    hop: int | None = None,
    temperature: float = 0.1,
    baseline: float = 0.2,
) -> pd.DataFrame:
    """Heuristic probabilities over ``LEARNER_STATES`` (boredom is the baseline); same layout as
    ``emotion_probabilities``. See the module docstring for how weak the evidence behind it is."""
    return _classify(au, LEARNER_STATES, LEARNER_PROTOTYPES, window, hop, temperature, baseline)


# The prediction tasks: their classes in logit order (what a registry model of the task must output) and
# the rule baseline that predicts them until a model is promoted (``tasks.predict.inference``).
# Teacher gestures (task ``gesture``, predicted from body keypoints and whole frames by ``teacher_gesture``).
# Paper 1 §3 names no classes ("action expressions") and its model's 8 outputs are unnamed, so the classes are
# ours: McNeill's four gesture types (Hand and Mind, 1992: deictic = pointing, iconic = depicting a concrete
# thing, metaphoric = depicting an abstract idea, beat = rhythmic emphasis with speech), the expressive ones,
# plus two non-expressive classroom states: writing (on the board) and rest (no hand gesture). The marts'
# ``body_group`` uses the share of time labelled EXPRESSIVE_GESTURES (sql/macros/groups.sql lists them too).
# There is no rule baseline for gestures: until a model is promoted the task is skipped (tasks.predict.inference).
GESTURES = ("deictic", "iconic", "metaphoric", "beat", "writing", "rest")
EXPRESSIVE_GESTURES = ("deictic", "iconic", "metaphoric", "beat")
# ``emotion`` is the default expression stream (a promoted model, else face-api.js's expression net, else these
# rules when the net's weights are missing: tasks.predict.inference); ``emotion_rules`` is always these rules, kept
# beside it as a second, named stream (the AUs say why), in the same classes.
EMOTION_STREAMS = ("emotion", "emotion_rules")
RULE_STREAMS = ("emotion_rules",)  # predicted by the rules only: no model is registered or promoted for them
TASK_CLASSES: dict[str, tuple[str, ...]] = {
    "emotion": EMOTIONS,
    "emotion_rules": EMOTIONS,
    "learner_state": LEARNER_STATES,
    "gesture": GESTURES,
}
BODY_TASKS = ("gesture",)  # predicted over body samples (their face_id column holds the body person_id)
RULES = {
    "emotion": (emotion_probabilities, EMOTION_PROTOTYPES),
    "emotion_rules": (emotion_probabilities, EMOTION_PROTOTYPES),
    "learner_state": (learner_state_probabilities, LEARNER_PROTOTYPES),
}


def check_task(task: str) -> tuple[str, ...]:
    """The classes of ``task``; ValueError listing the valid tasks otherwise."""
    if task not in TASK_CLASSES:
        raise ValueError(f"unknown task {task!r}; valid tasks: {', '.join(TASK_CLASSES)}")
    return TASK_CLASSES[task]
