"""The ``analyse`` flow: `tasks.analyse.analysis.analyse_store` plus its ANCOVA tables and Markdown report as
Prefect artifacts (the CLI calls `analyse_store` directly, without a Prefect API)."""

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

import flows  # noqa: F401  (offline Prefect defaults)
from tasks.analyse.analysis import Analysis, analyse_store
from tasks.analyse.report import formatted_paper_table
from tasks.store import Store


def publish_artifacts(analysis: Analysis) -> None:
    """Each outcome's ANCOVA table and the Markdown report as Prefect artifacts of the current flow run."""
    for dv, result in analysis.results.items():
        key = "ancova-" + "".join(c if c.isalnum() else "-" for c in dv.lower())
        create_table_artifact(
            table=formatted_paper_table(result).to_dict(orient="records"),
            key=key,
            description=f"ANCOVA of {dv} (n = {result.n_used}); report: {analysis.report}",
        )
    create_markdown_artifact(markdown=analysis.markdown, key="analysis-report", description=str(analysis.report))


@flow(name="analyse")
def analyse(
    store: str,
    outcomes: str,
    report_dir: str | None = None,
    link: str | None = None,
    ss_type: int = 2,
    thresholds: dict[str, float] | None = None,
    factors: str = "auto",
    storage_options: dict | None = None,
    emotion_stream: str = "emotion",
) -> str:
    """Analyse a store (a folder or an object-storage URL opened with ``storage_options``) against student
    outcomes (see `analyse_store`); returns the report's HTML path."""
    analysis = analyse_store(
        Store(store, storage_options), outcomes, report_dir, link, ss_type, thresholds, factors, emotion_stream
    )
    publish_artifacts(analysis)
    get_run_logger().info("%d ANCOVAs; report %s", len(analysis.results), analysis.report)
    return str(analysis.report)
