"""The analysis report: paper-1-style ANCOVA tables, adjusted means, plots, as HTML and Markdown.

`write_report` writes into one folder:

- ``report.html``: self-contained (CSS inline, plots as base64 PNG), so it opens offline and can be mailed;
- ``report.md`` with the plots beside it as PNG files;
- ``ancova.csv`` (every outcome's table at full precision), ``adjusted_means.csv`` and ``units.csv`` (the
  analysis table: one row per session or teacher with its groups), ``unit_level.csv`` (the unit-level
  analysis of every outcome) and ``design.json`` (units per cell, students per unit, ICCs, notes).

The report opens with the design (units, ICCs, factors constant within units, what was left out and why)
and one sentence saying which analysis to read. The ANCOVA tables follow paper 1, §4, Tables 6-8: effect,
df, mean square, F, p, partial eta squared, one block per outcome, with the covariate first; they are
labelled as the paper's student-level analysis, and the unit-level analysis (mixed model or ANCOVA of
unit means, `tasks.analyse.analysis`) follows each.
"""

import base64
import html
import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from tasks.analyse.stats import RESIDUAL, AncovaResult, MixedResult

PAPER_COLUMNS = ["Effect", "df", "Mean Square", "F", "p", "ηp²"]
EFFECT_LABELS = {
    "pretest": "Pre-test score (covariate)",
    "facial_group": "Facial expression",
    "body_group": "Body expression",
    RESIDUAL: "Error",
}
EMOTION_COLORS = {
    "happiness": "#f2b134",
    "surprise": "#8fd175",
    "neutral": "#c9ccd1",
    "sadness": "#4f7cac",
    "fear": "#9b72b0",
    "disgust": "#6b8e23",
    "anger": "#d1495b",
}
OTHER_COLOR = "#555555"
MAX_TIMELINE_VIDEOS = 24
DPI = 110


@dataclass(frozen=True)
class ReportInputs:
    """What a report shows.

    Attributes:
        title: heading of the report.
        facts: run facts shown at the top (store, outcomes file, link, SS type, thresholds, ...).
        units: the analysis table (one row per session or teacher, with ``facial_group``, ``body_group``).
        results: one ANCOVA per outcome column, in report order.
        windows: expression windows of the primary faces: ``video``, ``start_time``, ``end_time``, ``label``.
        au_means: mean AU intensity per video: ``video`` and one ``AUxx_r`` column per action unit.
        design: `tasks.analyse.analysis.Design` (None: not shown).
        unit_results: `tasks.analyse.analysis.UnitAnalysis` per outcome (None: not shown).
    """

    title: str
    facts: Mapping[str, str]
    units: pd.DataFrame
    results: Mapping[str, AncovaResult]
    windows: pd.DataFrame
    au_means: pd.DataFrame
    design: object | None = None
    unit_results: Mapping[str, object] | None = None


def effect_label(source: str) -> str:
    """Paper wording for an ANCOVA source: ``facial_group:body_group`` → ``Facial expression × Body expression``."""
    return " × ".join(EFFECT_LABELS.get(part, part) for part in source.split(":"))


def paper_table(result: AncovaResult) -> pd.DataFrame:
    """The ANCOVA table as in paper 1's Tables 6-8 (numbers unrounded; the error row last)."""
    table = result.table
    return pd.DataFrame(
        {
            "Effect": [effect_label(s) for s in table["source"]],
            "df": table["df"].to_numpy(),
            "Mean Square": table["ms"].to_numpy(),
            "F": table["F"].to_numpy(),
            "p": table["p"].to_numpy(),
            "ηp²": table["np2"].to_numpy(),
        }
    )


def format_p(p: float) -> str:
    """p as the paper prints it: three decimals, ``<0.001`` below that, empty when NaN."""
    if pd.isna(p):
        return ""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def _number(value: float, digits: int) -> str:
    return "" if pd.isna(value) else f"{value:.{digits}f}"


def formatted_paper_table(result: AncovaResult) -> pd.DataFrame:
    """`paper_table` as text: df whole, mean square and F with 2 decimals, p and ηp² with 3."""
    table = paper_table(result)
    return pd.DataFrame(
        {
            "Effect": table["Effect"],
            "df": [_number(v, 0) for v in table["df"]],
            "Mean Square": [_number(v, 2) for v in table["Mean Square"]],
            "F": [_number(v, 2) for v in table["F"]],
            "p": [format_p(v) for v in table["p"]],
            "ηp²": [_number(v, 3) for v in table["ηp²"]],
        }
    )


def formatted_means(result: AncovaResult) -> pd.DataFrame:
    """Adjusted means per factor level with their standard errors and group sizes, as text."""
    means = result.adjusted_means
    return pd.DataFrame(
        {
            "Factor": [effect_label(f) for f in means["factor"]],
            "Level": means["level"].astype(str),
            "Adjusted mean": [_number(v, 2) for v in means["mean"]],
            "SE": [_number(v, 2) for v in means["se"]],
            "n": means["n"].astype(str),
        }
    )


def slopes_sentence(result: AncovaResult) -> str:
    """One line on the homogeneity-of-regression-slopes test (the ANCOVA's assumption)."""
    rows = result.slopes[result.slopes["source"] != RESIDUAL]
    parts = [
        f"{row.source}: F({_number(row.df, 0)}, {_number(_residual_df(result.slopes), 0)}) = "
        f"{_number(row.F, 2)}, p = {format_p(row.p) or 'n/a'}"
        for row in rows.itertuples()
    ]
    return "Homogeneity of regression slopes — " + ("; ".join(parts) if parts else "not testable")


def _residual_df(table: pd.DataFrame) -> float:
    residual = table.loc[table["source"] == RESIDUAL, "df"]
    return float(residual.iloc[0]) if len(residual) else float("nan")


STUDENT_LEVEL_LABEL = "Paper 1's analysis: student-level ANCOVA (every student counted as independent)"


def unit_level_table(unit) -> pd.DataFrame:
    """The unit-level analysis as text: Wald tests of the mixed model, or the unit-means ANCOVA table."""
    result = unit.result
    if isinstance(result, MixedResult):
        table = result.table
        return pd.DataFrame(
            {
                "Effect": [effect_label(s) for s in table["source"]],
                "df": [_number(v, 0) for v in table["df"]],
                "Wald χ²": [_number(v, 2) for v in table["chi2"]],
                "p": [format_p(v) for v in table["p"]],
            }
        )
    return formatted_paper_table(result)


def unit_level_label(unit) -> str:
    result = unit.result
    if isinstance(result, MixedResult):
        return (
            f"Unit-level analysis: linear mixed model, random intercept per {result.group} (REML; "
            f"{result.n_groups} units, {result.n_used} students; unit variance {result.group_var:.3g}, residual "
            f"{result.scale:.3g}{'' if result.converged else '; NOT CONVERGED'})"
        )
    return (
        f"Unit-level analysis: ANCOVA of unit means ({result.n_used} units; covariate: the unit's mean pre-test; "
        f"type {result.ss_type} SS)"
    )


def optimism_sentence(unit) -> str:
    icc, residual = unit.icc, unit.residual_icc
    base = (
        f"ICC within units {_number(icc.icc, 3) or 'n/a'}; left by the factors (units nested in cells) "
        f"{_number(residual.icc, 3) or 'n/a'}, design effect {_number(residual.design_effect, 2) or 'n/a'}"
    )
    if unit.optimistic:
        return f"{base}: the student-level p-values above are optimistic (students are not independent)."
    return f"{base}."


def design_lines(design) -> list[str]:
    """The design as lines of text (facts, notes), for Markdown and HTML."""
    spu = design.students_per_unit
    lines = [
        f"Units: {design.n_units} ({design.link}), {design.n_students} students; students per unit "
        f"min {spu['min']:g}, median {spu['median']:g}, max {spu['max']:g}",
        f"Factors: {', '.join(design.factors)}; unit-level analysis: {design.method}",
    ]
    lines += [f"Warning: {note}" for note in design.notes]
    return lines


def icc_table(design) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Outcome": list(design.icc),
            "ICC": [_number(r.icc, 3) for r in design.icc.values()],
            "n0 (students per unit)": [_number(r.n0, 1) for r in design.icc.values()],
            "Design effect": [_number(r.design_effect, 2) for r in design.icc.values()],
        }
    )


def unit_level_csv(unit_results: Mapping[str, object]) -> pd.DataFrame:
    frames = []
    for dv, unit in unit_results.items():
        table = unit.result.table.rename(columns={"chi2": "wald_chi2"})
        frames.append(table.assign(outcome=dv, method=unit.method, effect=table["source"].map(effect_label)))
    table = pd.concat(frames, ignore_index=True)
    return table[["outcome", "method", "effect", *table.columns.drop(["outcome", "method", "effect"])]]


# plots ----------------------------------------------------------------------------------------------


def png_bytes(figure: Figure) -> bytes:
    """The figure as PNG."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def adjusted_means_figure(result: AncovaResult) -> Figure:
    """One panel per factor: adjusted mean of each level with ±1 SE error bars."""
    means = result.adjusted_means
    factors = list(dict.fromkeys(means["factor"]))
    figure = Figure(figsize=(2.6 * len(factors) + 0.6, 2.8))
    axes = figure.subplots(1, len(factors), sharey=True, squeeze=False)[0]
    for ax, factor in zip(axes, factors, strict=True):
        rows = means[means["factor"] == factor]
        x = np.arange(len(rows))
        ax.errorbar(x, rows["mean"], yerr=rows["se"], fmt="o", color="#2b5d8a", capsize=6, markersize=7, lw=1.5)
        ax.set_xticks(x, [f"{level}\n(n={n})" for level, n in zip(rows["level"], rows["n"], strict=True)])
        ax.set_xlim(-0.6, len(rows) - 0.4)
        ax.set_title(effect_label(factor), fontsize=10)
        ax.grid(axis="y", color="#e4e4e4")
        ax.spines[["top", "right"]].set_visible(False)
    axes[0].set_ylabel(f"{result.dv}\n(adjusted mean ± SE)", fontsize=9)
    figure.tight_layout()
    return figure


def timeline_figure(windows: pd.DataFrame, max_videos: int = MAX_TIMELINE_VIDEOS) -> Figure:
    """Expression label over time, one lane per video (the first ``max_videos`` videos)."""
    videos = list(dict.fromkeys(windows["video"]))[:max_videos]
    figure = Figure(figsize=(10, 0.8 + 0.36 * max(len(videos), 1)))
    ax = figure.subplots()
    for lane, video in enumerate(videos):
        rows = windows[windows["video"] == video]
        spans = list(zip(rows["start_time"], rows["end_time"] - rows["start_time"], strict=True))
        colors = [EMOTION_COLORS.get(label, OTHER_COLOR) for label in rows["label"]]
        ax.broken_barh(spans, (lane - 0.4, 0.8), facecolors=colors, linewidth=0)
    ax.set_yticks(range(len(videos)), videos, fontsize=8)
    ax.set_ylim(len(videos) - 0.5, -0.5)
    ax.set_xlabel("time in video (s)")
    ax.spines[["top", "right"]].set_visible(False)
    present = [label for label in EMOTION_COLORS if label in set(windows["label"])]
    handles = [Patch(color=EMOTION_COLORS[label], label=label) for label in present]
    ax.legend(handles=handles, ncols=len(handles) or 1, loc="lower left", bbox_to_anchor=(0, 1.0), frameon=False)
    figure.tight_layout()
    return figure


def au_heatmap_figure(au_means: pd.DataFrame) -> Figure:
    """Mean AU intensity (0-5) per video (rows) and action unit (columns)."""
    columns = [c for c in au_means.columns if re.fullmatch(r"AU\d+_r", c)]
    values = au_means[columns].to_numpy(float)
    figure = Figure(figsize=(10, 1.2 + 0.34 * max(len(au_means), 1)))
    ax = figure.subplots()
    image = ax.imshow(values, aspect="auto", cmap=ListedColormap(_blues(256)), vmin=0, vmax=5)
    ax.set_xticks(range(len(columns)), [c.removesuffix("_r") for c in columns], fontsize=8, rotation=45)
    ax.set_yticks(range(len(au_means)), au_means["video"], fontsize=8)
    for (i, j), value in np.ndenumerate(values):
        if np.isfinite(value):
            ax.text(
                j, i, f"{value:.1f}", ha="center", va="center", fontsize=7, color="white" if value > 2.5 else "black"
            )
    figure.colorbar(image, ax=ax, label="mean intensity (0-5)", fraction=0.03, pad=0.01)
    figure.tight_layout()
    return figure


def _blues(n: int) -> np.ndarray:
    """A white-to-dark-blue ramp (RGB rows), light enough at 0 for black numbers."""
    t = np.linspace(0, 1, n)[:, None]
    return (1 - t) * np.array([0.97, 0.98, 1.0]) + t * np.array([0.05, 0.19, 0.42])


# writing ----------------------------------------------------------------------------------------------


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "outcome"


def plots(inputs: ReportInputs) -> dict[str, bytes]:
    """Every plot of the report as PNG bytes, by file name."""
    images = {
        f"adjusted_means_{_slug(dv)}.png": png_bytes(adjusted_means_figure(r)) for dv, r in inputs.results.items()
    }
    if len(inputs.windows):
        images["expression_timeline.png"] = png_bytes(timeline_figure(inputs.windows))
    if len(inputs.au_means):
        images["au_heatmap.png"] = png_bytes(au_heatmap_figure(inputs.au_means))
    return images


def ancova_csv(results: Mapping[str, AncovaResult]) -> pd.DataFrame:
    """Every outcome's ANCOVA table at full precision, with ``outcome`` and the paper's effect names."""
    frames = [r.table.assign(outcome=dv, effect=r.table["source"].map(effect_label)) for dv, r in results.items()]
    table = pd.concat(frames, ignore_index=True)
    return table[["outcome", "effect", *table.columns.drop(["outcome", "effect"])]]


def means_csv(results: Mapping[str, AncovaResult]) -> pd.DataFrame:
    """Every outcome's adjusted means at full precision, with an ``outcome`` column first."""
    table = pd.concat([r.adjusted_means.assign(outcome=dv) for dv, r in results.items()], ignore_index=True)
    return table[["outcome", *table.columns.drop("outcome")]]


def write_report(folder: str | Path, inputs: ReportInputs) -> Path:
    """Write report.html, report.md, the plots and the CSV tables into ``folder``; returns the HTML path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    images = plots(inputs)
    for name, data in images.items():
        (folder / name).write_bytes(data)
    ancova_csv(inputs.results).to_csv(folder / "ancova.csv", index=False)
    means_csv(inputs.results).to_csv(folder / "adjusted_means.csv", index=False)
    inputs.units.to_csv(folder / "units.csv", index=False)
    if inputs.unit_results:
        unit_level_csv(inputs.unit_results).to_csv(folder / "unit_level.csv", index=False)
    if inputs.design is not None:
        (folder / "design.json").write_text(json.dumps(inputs.design.to_dict(), indent=2, default=str))
    (folder / "report.md").write_text(to_markdown(inputs, list(images)))
    path = folder / "report.html"
    path.write_text(to_html(inputs, images))
    return path


def _units_view(units: pd.DataFrame) -> pd.DataFrame:
    """The analysis table as text: seconds (``*_s``) with 1 decimal, other numbers with 3."""
    view = units.copy()
    for column in view.columns:
        if pd.api.types.is_float_dtype(view[column]):
            digits = 1 if column.endswith("_s") else 3
            view[column] = [_number(v, digits) for v in view[column]]
    return view.fillna("").astype(str)


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of ``frame`` (cells as text, pipes escaped)."""

    def cells(values) -> str:
        return "| " + " | ".join(str(v).replace("|", "\\|") for v in values) + " |"

    lines = [cells(frame.columns), "|" + "---|" * len(frame.columns)]
    lines += [cells(row) for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def to_markdown(inputs: ReportInputs, image_names: list[str]) -> str:
    """The report as Markdown; plots are linked as the PNG files written beside it."""
    parts = [f"# {inputs.title}", "", *(f"- **{k}**: {v}" for k, v in inputs.facts.items()), ""]
    design, unit_results = inputs.design, inputs.unit_results or {}
    if design is not None:
        parts += ["## Design", "", f"**{design.read}**", "", *(f"- {line}" for line in design_lines(design)), ""]
        parts += [markdown_table(design.cells.astype(str)), "", markdown_table(icc_table(design)), ""]
    parts += ["## Groups", "", markdown_table(_units_view(inputs.units)), ""]
    for dv, result in inputs.results.items():
        image = f"adjusted_means_{_slug(dv)}.png"
        parts += [f"## {dv}", "", f"n = {result.n_used} students ({result.n_dropped} dropped for missing values)"]
        parts += ["", f"{STUDENT_LEVEL_LABEL}:"]
        parts += ["", markdown_table(formatted_paper_table(result)), "", markdown_table(formatted_means(result))]
        parts += ["", slopes_sentence(result), ""]
        if dv in unit_results:
            unit = unit_results[dv]
            parts += [f"{unit_level_label(unit)}:", "", markdown_table(unit_level_table(unit)), ""]
            parts += [optimism_sentence(unit), ""]
        parts += [f"![adjusted means of {dv}]({image})", ""]
    for name, heading in (("expression_timeline.png", "Expression timeline"), ("au_heatmap.png", "AU heatmap")):
        if name in image_names:
            parts += [f"## {heading}", "", f"![{heading}]({name})", ""]
    return "\n".join(parts)


def _html_table(frame: pd.DataFrame, css: str = "") -> str:
    return frame.to_html(index=False, escape=True, border=0, classes=css or None, na_rep="")


def _img(data: bytes, alt: str) -> str:
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'


def to_html(inputs: ReportInputs, images: Mapping[str, bytes]) -> str:
    """The report as one self-contained HTML page (plots embedded as base64 PNG)."""
    esc = html.escape
    facts = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in inputs.facts.items())
    body = [f"<h1>{esc(inputs.title)}</h1>", f'<dl class="facts">{facts}</dl>']
    design, unit_results = inputs.design, inputs.unit_results or {}
    if design is not None:
        body += ["<h2>Design</h2>", f'<p class="read"><strong>{esc(design.read)}</strong></p>', "<ul>"]
        body += [f"<li>{esc(line)}</li>" for line in design_lines(design)] + ["</ul>"]
        body += [_html_table(design.cells.astype(str), "units"), _html_table(icc_table(design), "ancova")]
    body += ["<h2>Groups</h2>", '<div class="scroll">', _html_table(_units_view(inputs.units), "units"), "</div>"]
    for dv, result in inputs.results.items():
        body += [
            f'<section class="outcome"><h2>{esc(dv)}</h2>',
            f'<p class="note">n = {result.n_used} students ({result.n_dropped} dropped for missing values); '
            f"type {result.ss_type} sums of squares</p>",
            '<div class="pair"><div>',
            f'<p class="note">{esc(STUDENT_LEVEL_LABEL)}</p>',
            _html_table(formatted_paper_table(result), "ancova"),
            _html_table(formatted_means(result), "means"),
            f'<p class="note">{esc(slopes_sentence(result))}</p>',
            *(
                [
                    f'<p class="note">{esc(unit_level_label(unit_results[dv]))}</p>',
                    _html_table(unit_level_table(unit_results[dv]), "ancova"),
                    f'<p class="note">{esc(optimism_sentence(unit_results[dv]))}</p>',
                ]
                if dv in unit_results
                else []
            ),
            "</div>",
            f"<figure>{_img(images[f'adjusted_means_{_slug(dv)}.png'], f'adjusted means of {dv}')}</figure>",
            "</div></section>",
        ]
    for name, heading, note in (
        ("expression_timeline.png", "Expression timeline", "Emotion label of each window of the primary face."),
        ("au_heatmap.png", "AU heatmap", "Mean action-unit intensity of the primary face per video."),
    ):
        if name in images:
            body += [
                f"<h2>{heading}</h2>",
                f'<p class="note">{note}</p>',
                f"<figure>{_img(images[name], heading)}</figure>",
            ]
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(inputs.title)}</title><style>{CSS}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1f2933;
       max-width: 1180px; margin: 24px auto; padding: 0 24px; line-height: 1.4; }
h1 { font-size: 1.6em; margin-bottom: 0.3em; }
h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #d9dee3; padding-bottom: 4px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; font-size: 0.9em; }
dl.facts dt { color: #52606d; } dl.facts dd { margin: 0; font-family: ui-monospace, monospace; }
table { border-collapse: collapse; font-size: 0.88em; margin: 8px 0 12px; }
th, td { padding: 4px 10px; border-bottom: 1px solid #e4e7eb; text-align: right; white-space: nowrap; }
th { background: #f5f7fa; border-bottom: 2px solid #9aa5b1; }
td:first-child, th:first-child { text-align: left; }
table.units td, table.units th { text-align: left; }
.scroll { overflow-x: auto; }
.pair { display: flex; flex-wrap: wrap; gap: 12px 32px; align-items: flex-start; }
.pair > div { flex: 0 1 470px; } .pair > figure { flex: 1 1 420px; }
.note { color: #52606d; font-size: 0.85em; margin: 4px 0; }
figure { margin: 8px 0; } img { max-width: 100%; height: auto; }
"""
