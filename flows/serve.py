"""``lessonlens serve``: the deployments ``nightly-corpus`` and ``reprocess-after-retraining``, served.

- ``nightly-corpus/nightly-corpus``: flow ``nightly-corpus`` on a cron schedule (default 02:00 every day),
  with default parameters ``corpus``, ``store`` and the Dask settings (override them per run with
  ``prefect deployment run nightly-corpus/nightly-corpus -p corpus=... -p store=...``).
- ``reprocess/reprocess-after-retraining``: flow ``reprocess``, triggered by the event
  ``lessonlens.model.registered`` (emitted by ``lessonlens models promote``) for the store and task the
  event names, and on a weekly schedule (Sundays 03:00) for the default store.

Schedules and event triggers need a long-running Prefect server (``prefect server start``), not the
temporary API that ``lessonlens run`` starts; the serving process runs each flow run in a subprocess.
"""

import os

import flows  # noqa: F401  (offline Prefect defaults)
from models.registry import EVENT
from tasks.predict.privacy import DEFAULT_CROPS_RETENTION_DAYS

NIGHTLY_CRON = "0 2 * * *"
WEEKLY_CRON = "0 3 * * 0"


def server_url() -> str:
    """The configured Prefect server's API URL, exported so that Dask workers report to it too."""
    from prefect.settings import PREFECT_API_URL

    url = os.environ.get("PREFECT_API_URL") or PREFECT_API_URL.value()
    if not url:
        raise ValueError(
            "no Prefect server configured: start one (prefect server start) and point to it "
            "(prefect config set PREFECT_API_URL=http://127.0.0.1:4200/api), then serve again"
        )
    os.environ["PREFECT_API_URL"] = url
    return url


def deployments(
    store: str,
    corpus: str | None = None,
    cron: str = NIGHTLY_CRON,
    reprocess_cron: str = WEEKLY_CRON,
    dask_address: str | None = None,
    workers: int | None = None,
    au_model_dir: str | None = None,
    keep_student_crops: bool = False,
    crops_retention_days: int | None = DEFAULT_CROPS_RETENTION_DAYS,
    store_group_readable: bool | None = None,
    storage_options: dict | None = None,
) -> list:
    from prefect.deployments.runner import EntrypointType
    from prefect.events import DeploymentEventTrigger

    from flows.nightly_corpus import nightly_corpus
    from flows.reprocess import reprocess

    shared = {"dask_address": dask_address, "workers": workers, "storage_options": storage_options}
    nightly = nightly_corpus.to_deployment(
        name="nightly-corpus",
        cron=cron,
        parameters={
            "store": store,
            **({"corpus": corpus} if corpus else {}),
            **shared,
            "au_model_dir": au_model_dir,
            "keep_student_crops": keep_student_crops,
            "crops_retention_days": crops_retention_days,
            "store_group_readable": store_group_readable,
        },
        description="extract every new or changed video of the corpus, then predict",
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    on_promotion = DeploymentEventTrigger(
        expect={EVENT},
        match={"prefect.resource.id": "lessonlens.model.*"},
        parameters={
            "store": "{{ event.resource.get('store') }}",
            "task": "{{ event.resource.get('task') }}",
            **shared,
        },
    )
    retrain = reprocess.to_deployment(
        name="reprocess-after-retraining",
        cron=reprocess_cron,
        triggers=[on_promotion],
        parameters={"store": store, **shared},
        description="recompute predictions made by older model versions, from the stored face crops",
        entrypoint_type=EntrypointType.MODULE_PATH,
    )
    return [nightly, retrain]


def serve_deployments(**options) -> None:
    """Register the deployments with the configured server and run their flow runs until interrupted."""
    from prefect import serve

    server_url()
    serve(*deployments(**options))
