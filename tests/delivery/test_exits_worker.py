"""The exits queue: delivery tasks go there, the model worker never consumes it, the exits worker runs no
batch loop."""

from types import SimpleNamespace

from edgeportal.celery import EdgePortalBatchLoop, app
from edgeportal.delivery.queues import exits_queue, route_task
from edgeportal.serving import exits_worker_command


def test_delivery_tasks_are_routed_to_the_exits_queue_of_the_current_prefix(redis_prefix):
    assert exits_queue() == f"{redis_prefix}:exits"
    assert route_task("edgeportal.delivery.tasks.deliver", [1], {}, {}) == {"queue": f"{redis_prefix}:exits"}
    assert route_task("edgeportal.jobs.tasks.requeue_lost_jobs", [], {}, {}) is None
    assert app.amqp.router.route({}, "edgeportal.delivery.tasks.deliver", args=[1])["queue"].name == exits_queue()


def test_a_worker_started_without_q_consumes_the_default_queue_only_even_after_a_delivery_was_routed():
    app.amqp.router.route({}, "edgeportal.delivery.tasks.deliver", args=[1])  # adds the exits queue to the app
    assert set(app.amqp.queues.consume_from) == {app.conf.task_default_queue}


def worker_consuming(*queues):
    consume_from = {name: object() for name in queues}
    return SimpleNamespace(app=SimpleNamespace(amqp=SimpleNamespace(queues=SimpleNamespace(consume_from=consume_from))))


def test_the_batch_loop_starts_in_every_worker_but_one_that_consumes_only_the_exits_queue():
    step = EdgePortalBatchLoop.__new__(EdgePortalBatchLoop)
    assert step.include_if(worker_consuming(exits_queue())) is False
    assert step.include_if(worker_consuming(app.conf.task_default_queue)) is True
    assert step.include_if(worker_consuming(app.conf.task_default_queue, exits_queue())) is True


def test_the_exits_worker_runs_threads_on_the_exits_queue_one_message_per_thread():
    command = exits_worker_command(name="exits1@%h", queue="edgeportal:exits", python="python")
    assert command[:6] == ["python", "-m", "celery", "-A", "edgeportal", "worker"]
    joined = " ".join(command)
    assert "-P threads -c 4" in joined and "-Q edgeportal:exits" in joined and "--prefetch-multiplier 1" in joined


def test_make_run_supervises_the_exits_worker_beside_the_model_worker_and_the_web_server(monkeypatch, redis_prefix):
    from edgeportal import serving

    supervised = {}

    class Recorder:
        def __init__(self, programs):
            supervised.update({program.name: program.command for program in programs})

        def run(self):
            return 0

    monkeypatch.setattr(serving, "Supervisor", Recorder)
    monkeypatch.setattr(serving, "port_is_free", lambda host, port: True)
    assert serving.main(["--port", "8765"]) == 0
    assert list(supervised) == ["worker", "exits", "beat", "web"]
    assert f"{redis_prefix}:exits" in supervised["exits"] and "-Q" not in supervised["worker"]
