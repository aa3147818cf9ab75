"""The analysis report: paper-1-style ANCOVA tables, adjusted means, plots, as HTML and Markdown.

`write_report` writes into one folder:

- ``report.html``: self-contained (CSS inline, plots as base64 PNG), so it opens offline and can be mailed;
- ``report.md`` with the plots beside it as PNG files;
- ``ancova.csv`` (every outcome's student-level table at full precision), ``adjusted_means.csv`` (from the
  model each outcome's analysis reads), ``units.csv`` (the analysis table: one row per session or teacher
  with its groups), ``read.csv`` (the analysis to read of every outcome: df, F, p, Holm p, effect sizes and
  intervals) and ``design.json`` (levels, unit, units per cell, students per unit, notes).

The report opens with the design (grouping levels, the unit of analysis, units per cell, what was left out
and why) and each outcome's clustering. Per outcome: one sentence saying which analysis to read and why,
its table, its adjusted means with 95 % intervals and their plot (labelled with the model), the assumption
checks and a Q-Q plot of its unit-level residuals; then paper 1's student-level ANCOVA (§4, Tables 6-8:
effect, df, mean square, F, p, partial eta squared, covariate first), labelled as the paper's analysis.
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

from tasks.analyse.stats import RESIDUAL, AncovaResult
from tasks.analyse.wording import (
    assumptions_sentence,
    clustering_sentence,
    clustering_table,
    effect_label,
    format_p,
    has_qq,
    model_label,
    number,
    read_csv,
    read_means,
    read_table,
    short_label,
)
from tasks.store import csv_safe, md_cell

PAPER_COLUMNS = ["Effect", "df", "Mean Square", "F", "p", "ηp²"]
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
        outcomes: `tasks.analyse.reading.OutcomeAnalysis` per outcome: the analysis to read (None: only the
            student-level ANCOVA is shown, and plotted).
    """

    title: str
    facts: Mapping[str, str]
    units: pd.DataFrame
    results: Mapping[str, AncovaResult]
    windows: pd.DataFrame
    au_means: pd.DataFrame
    design: object | None = None
    outcomes: Mapping[str, object] | None = None


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


def formatted_paper_table(result: AncovaResult) -> pd.DataFrame:
    """`paper_table` as text: df whole, mean square and F with 2 decimals, p and ηp² with 3."""
    table = paper_table(result)
    return pd.DataFrame(
        {
            "Effect": table["Effect"],
            "df": [number(v, 0) for v in table["df"]],
            "Mean Square": [number(v, 2) for v in table["Mean Square"]],
            "F": [number(v, 2) for v in table["F"]],
            "p": [format_p(v) for v in table["p"]],
            "ηp²": [number(v, 3) for v in table["ηp²"]],
        }
    )


def formatted_means(result: AncovaResult) -> pd.DataFrame:
    """Adjusted means per factor level with their standard errors and group sizes, as text."""
    means = result.adjusted_means
    return pd.DataFrame(
        {
            "Factor": [effect_label(f) for f in means["factor"]],
            "Level": means["level"].astype(str),
            "Adjusted mean": [number(v, 2) for v in means["mean"]],
            "SE": [number(v, 2) for v in means["se"]],
            "n": means["n"].astype(str),
        }
    )


def slopes_sentence(result: AncovaResult) -> str:
    """One line on the homogeneity-of-regression-slopes test (the ANCOVA's assumption)."""
    rows = result.slopes[result.slopes["source"] != RESIDUAL]
    parts = [
        f"{row.source}: F({number(row.df, 0)}, {number(_residual_df(result.slopes), 0)}) = "
        f"{number(row.F, 2)}, p = {format_p(row.p) or 'n/a'}"
        for row in rows.itertuples()
    ]
    return "Homogeneity of regression slopes — " + ("; ".join(parts) if parts else "not testable")


def _residual_df(table: pd.DataFrame) -> float:
    residual = table.loc[table["source"] == RESIDUAL, "df"]
    return float(residual.iloc[0]) if len(residual) else float("nan")


STUDENT_LEVEL_LABEL = "Paper 1's analysis: student-level ANCOVA (every student counted as independent)"


def design_lines(design) -> list[str]:
    """The design as lines of text (levels, unit, facts, notes), for Markdown and HTML."""
    spu, levels = design.students_per_unit, design.levels
    chain = " in ".join(f"{level} ({levels.counts[level]})" for level in levels.levels)
    lines = [
        f"Grouping levels (lowest first): students ({design.n_students}) in {chain}",
        f"Unit of analysis: {design.unit} ({design.n_units}; students per unit min {spu['min']:g}, "
        f"median {spu['median']:g}, max {spu['max']:g}); factors: {', '.join(design.factors)}",
    ]
    lines += [f"Note: {note}" for note in design.notes]
    return lines


# plots ----------------------------------------------------------------------------------------------


def png_bytes(figure: Figure) -> bytes:
    """The figure as PNG."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def adjusted_means_figure(means: pd.DataFrame, dv: str, label: str) -> Figure:
    """One panel per factor: adjusted mean of each level with its 95 % interval (``ci_low``, ``ci_high``) or,
    for the student-level ANCOVA, ±1 SE; ``label`` names the model in the axis title."""
    factors = list(dict.fromkeys(means["factor"]))
    interval = "ci_low" in means
    figure = Figure(figsize=(2.6 * len(factors) + 0.6, 3.0))
    axes = figure.subplots(1, len(factors), sharey=True, squeeze=False)[0]
    for ax, factor in zip(axes, factors, strict=True):
        rows = means[means["factor"] == factor]
        x = np.arange(len(rows))
        if interval:
            yerr = np.vstack([rows["mean"] - rows["ci_low"], rows["ci_high"] - rows["mean"]])
        else:
            yerr = rows["se"]
        ax.errorbar(x, rows["mean"], yerr=yerr, fmt="o", color="#2b5d8a", capsize=6, markersize=7, lw=1.5)
        ax.set_xticks(x, [f"{level}\n(n={n})" for level, n in zip(rows["level"], rows["n"], strict=True)])
        ax.set_xlim(-0.6, len(rows) - 0.4)
        ax.set_title(effect_label(factor), fontsize=10)
        ax.grid(axis="y", color="#e4e4e4")
        ax.spines[["top", "right"]].set_visible(False)
    axes[0].set_ylabel(f"{dv}\n(adjusted mean {'and 95% CI' if interval else '± SE'})", fontsize=9)
    figure.suptitle(label, fontsize=9)
    figure.tight_layout()
    return figure


def qq_figure(residuals: np.ndarray, label: str) -> Figure:
    """Normal Q-Q plot of standardised residuals (Blom plotting positions) with the identity line."""
    from scipy import stats

    values = np.sort((residuals - residuals.mean()) / residuals.std(ddof=1))
    theoretical = stats.norm.ppf((np.arange(1, len(values) + 1) - 0.375) / (len(values) + 0.25))
    figure = Figure(figsize=(3.2, 3.0))
    ax = figure.subplots()
    ax.plot(theoretical, values, "o", color="#2b5d8a", markersize=5)
    edge = float(max(np.abs(theoretical).max(), np.abs(values).max())) + 0.2
    ax.plot([-edge, edge], [-edge, edge], color="#9aa5b1", lw=1)
    ax.set_xlabel("normal quantile", fontsize=9)
    ax.set_ylabel("standardised residual", fontsize=9)
    ax.set_title(label, fontsize=9)
    ax.spines[["top", "right"]].set_visible(False)
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
    """Every plot of the report as PNG bytes, by file name: adjusted means from the model each outcome's
    analysis reads (the student-level ANCOVA without one), its residuals' Q-Q plot, timeline, AU heatmap."""
    images, outcomes = {}, inputs.outcomes or {}
    for dv, result in inputs.results.items():
        if dv in outcomes:
            figure = adjusted_means_figure(outcomes[dv].means, dv, f"from the {short_label(outcomes[dv])}")
        else:
            figure = adjusted_means_figure(result.adjusted_means, dv, "from the student-level ANCOVA")
        images[f"adjusted_means_{_slug(dv)}.png"] = png_bytes(figure)
        if dv in outcomes and has_qq(outcomes[dv]):
            label = f"{dv}: unit-level residuals\n({short_label(outcomes[dv])})"
            images[f"qq_{_slug(dv)}.png"] = png_bytes(qq_figure(outcomes[dv].residuals, label))
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


def means_csv(inputs: ReportInputs) -> pd.DataFrame:
    """Every outcome's adjusted means at full precision, from the model its analysis reads (``model``)."""
    outcomes = inputs.outcomes or {}
    frames = [
        outcomes[dv].means.assign(outcome=dv, model=short_label(outcomes[dv]))
        if dv in outcomes
        else r.adjusted_means.assign(outcome=dv, model="student-level ANCOVA")
        for dv, r in inputs.results.items()
    ]
    table = pd.concat(frames, ignore_index=True)
    return table[["outcome", "model", *table.columns.drop(["outcome", "model"])]]


def write_report(folder: str | Path, inputs: ReportInputs) -> Path:
    """Write report.html, report.md, the plots and the CSV tables into ``folder``; returns the HTML path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    images = plots(inputs)
    for name, data in images.items():
        (folder / name).write_bytes(data)
    # text cells that a spreadsheet would run as a formula (outcome names, session and teacher ids) made inert
    csv_safe(ancova_csv(inputs.results)).to_csv(folder / "ancova.csv", index=False)
    csv_safe(means_csv(inputs)).to_csv(folder / "adjusted_means.csv", index=False)
    csv_safe(inputs.units).to_csv(folder / "units.csv", index=False)
    if inputs.outcomes:
        csv_safe(read_csv(inputs.outcomes)).to_csv(folder / "read.csv", index=False)
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
            view[column] = [number(v, digits) for v in view[column]]
    return view.fillna("").astype(str)


def markdown_table(frame: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table of ``frame`` (cells as text: HTML, pipes and newlines escaped)."""

    def cells(values) -> str:
        return "| " + " | ".join(md_cell(v) for v in values) + " |"

    lines = [cells(frame.columns), "|" + "---|" * len(frame.columns)]
    lines += [cells(row) for row in frame.itertuples(index=False)]
    return "\n".join(lines)


def outcome_blocks(inputs: ReportInputs, dv: str) -> list[tuple]:
    """What the report shows of one outcome, in order, as (kind, ...) blocks that Markdown and HTML render:
    ``("lead", text)``, ``("note", text)``, ``("table", frame)``, ``("image", file name, alt text)``."""
    result, analysis = inputs.results[dv], (inputs.outcomes or {}).get(dv)
    means_image = ("image", f"adjusted_means_{_slug(dv)}.png", f"adjusted means of {dv}")
    student = [
        ("note", f"n = {result.n_used} students ({result.n_dropped} dropped for missing values)"),
        ("note", f"{STUDENT_LEVEL_LABEL} (type {result.ss_type} sums of squares):"),
        ("table", formatted_paper_table(result)),
        ("table", formatted_means(result)),
        ("note", slopes_sentence(result)),
    ]
    if analysis is None:
        return [*student, means_image]
    return [
        ("lead", analysis.sentence),
        ("note", f"Analysis to read: {model_label(analysis)}; Holm p across outcomes and factor terms:"),
        ("table", read_table(analysis)),
        ("table", read_means(analysis)),
        means_image,
        ("note", assumptions_sentence(analysis)),
        *([("image", f"qq_{_slug(dv)}.png", f"Q-Q plot of {dv}")] if has_qq(analysis) else []),
        ("note", clustering_sentence(analysis)),
        *student,
    ]


def design_blocks(design, outcomes: Mapping[str, object]) -> list[tuple]:
    blocks = [("list", design_lines(design)), ("table", design.cells.astype(str))]
    return blocks + ([("table", clustering_table(outcomes))] if outcomes else [])


def to_markdown(inputs: ReportInputs, image_names: list[str]) -> str:
    """The report as Markdown; plots are linked as the PNG files written beside it."""
    parts = [f"# {md_cell(inputs.title)}", "", *(f"- **{md_cell(k)}**: {md_cell(v)}" for k, v in inputs.facts.items())]
    parts += [""]
    if inputs.design is not None:
        parts += ["## Design", ""]
        parts += _markdown_blocks(design_blocks(inputs.design, inputs.outcomes or {}))
    parts += ["## Groups", "", markdown_table(_units_view(inputs.units)), ""]
    for dv in inputs.results:
        parts += [f"## {md_cell(dv)}", "", *_markdown_blocks(outcome_blocks(inputs, dv))]
    for name, heading in (("expression_timeline.png", "Expression timeline"), ("au_heatmap.png", "AU heatmap")):
        if name in image_names:
            parts += [f"## {heading}", "", f"![{heading}]({name})", ""]
    return "\n".join(parts)


def _markdown_blocks(blocks: list[tuple]) -> list[str]:
    lines = []
    for kind, *rest in blocks:
        if kind == "lead":
            lines += [f"**{rest[0]}**", ""]
        elif kind == "note":
            lines += [rest[0], ""]
        elif kind == "list":
            lines += [*(f"- {line}" for line in rest[0]), ""]
        elif kind == "table":
            lines += [markdown_table(rest[0]), ""]
        else:
            lines += [f"![{md_cell(rest[1])}]({rest[0]})", ""]
    return lines


def _html_blocks(blocks: list[tuple], images: Mapping[str, bytes]) -> list[str]:
    esc, out = html.escape, []
    for kind, *rest in blocks:
        if kind == "lead":
            out.append(f'<p class="read"><strong>{esc(rest[0])}</strong></p>')
        elif kind == "note":
            out.append(f'<p class="note">{esc(rest[0])}</p>')
        elif kind == "list":
            out += ["<ul>", *(f"<li>{esc(line)}</li>" for line in rest[0]), "</ul>"]
        elif kind == "table":
            out.append(_html_table(rest[0], "ancova"))
        else:
            out.append(f"<figure>{_img(images[rest[0]], rest[1])}</figure>")
    return out


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
    if inputs.design is not None:
        body += ["<h2>Design</h2>", *_html_blocks(design_blocks(inputs.design, inputs.outcomes or {}), images)]
    body += ["<h2>Groups</h2>", '<div class="scroll">', _html_table(_units_view(inputs.units), "units"), "</div>"]
    for dv in inputs.results:
        body += [f'<section class="outcome"><h2>{esc(dv)}</h2>', *_html_blocks(outcome_blocks(inputs, dv), images),
                 "</section>"]  # fmt: skip
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
.note { color: #52606d; font-size: 0.85em; margin: 4px 0; }
figure { margin: 8px 0; } img { max-width: 100%; height: auto; }
"""
