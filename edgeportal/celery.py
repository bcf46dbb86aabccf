"""The Celery app: periodic tasks, and the bootstep that runs the batch loop beside the resident model."""

import logging
import os

from celery import Celery
from celery.signals import worker_shutdown

from edgeportal.worker_step import BatchLoopStep

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "edgeportal.settings")

app = Celery("edgeportal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


class EdgePortalBatchLoop(BatchLoopStep):
    def include_if(self, worker):
        from edgeportal.delivery.queues import exits_queue

        # The exits worker (-Q <prefix>:exits and nothing else) only sends deliveries: no model, no batch loop.
        return set(worker.app.amqp.queues.consume_from) != {exits_queue()}

    def make_sink(self):
        from django.db import connections

        from edgeportal.jobs.sink import DatabaseSink  # Django is ready only once the worker starts

        # One long-lived thread writes every batch: keep its connection instead of reconnecting per batch.
        if connections["default"].vendor != "sqlite":
            connections.settings["default"]["CONN_MAX_AGE"] = None
        _language_detector_warm()
        return DatabaseSink()

    def engine_for_jobs(self, model):
        """The model, with candidates picked by the CPU reranker, and the semantic prompt cache in front of it
        (both on the reranker's embeddings). Where a template asks for either, the embedding model loads here,
        in the batch thread, once the model has loaded: a second thread importing transformers at the same
        time as the model's loading can fail (its lazy imports are not thread-safe), and the first reranked
        batch need not wait for it."""
        from django.db import DatabaseError
        from django.db.models import Q

        from edgeportal.outputs.reranking import reranker_embedder, reranker_pick
        from edgeportal.prompts.models import PromptTemplate
        from edgeportal.prompts.semantic_cache import semantic_lookup, semantic_store
        from inference.candidates import WithCandidates
        from inference.semantic_cache import WithSemanticCache

        try:
            wanted = PromptTemplate.objects.filter(Q(candidates__gt=1) | Q(semantic_cache__isnull=False)).exists()
        except DatabaseError:  # the database is not up yet: it loads with the first reranked batch
            wanted = False
        if wanted:
            try:
                reranker_embedder()
            except Exception:  # the first candidate answers meanwhile, and the job says why
                logging.getLogger(__name__).exception("could not load the reranker's embedding model")
        picked = WithCandidates(model, reranker_pick(reranker_embedder))
        return WithSemanticCache(picked, semantic_lookup(reranker_embedder), semantic_store)

    def redis_settings(self):
        from django.conf import settings

        return settings.REDIS_URL, settings.EDGE_REDIS_PREFIX


def _language_detector_warm() -> None:
    """Where templates declare outputs or candidates (whose reranker checks languages), build the language
    detector (seconds, about 440 MiB) beside the model loading, so the first output checked or reranked does not
    hold its batch's results that long."""
    import threading

    from django.db import DatabaseError
    from django.db.models import Q

    from edgeportal.outputs.language import language_detector
    from edgeportal.prompts.models import PromptTemplate

    try:
        declared = PromptTemplate.objects.filter(~Q(outputs=[]) | Q(candidates__gt=1)).exists()
    except DatabaseError:  # the database is not up yet: the detector loads with the first output checked
        return
    if declared:
        threading.Thread(target=language_detector, name="language-detector-warm", daemon=True).start()


app.steps["worker"].add(EdgePortalBatchLoop)


@worker_shutdown.connect
def _metrics_process_dead(**kwargs):
    from edgeportal.core import metrics  # after Django settings, like every import of prometheus_client

    metrics.process_dead()
