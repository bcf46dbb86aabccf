"""The Celery bootstep's checks at a worker's start (edgeportal/worker_step.py), against a real Redis."""

import subprocess
import sys
from pathlib import Path

import pytest

from edgeportal.worker_step import refuse_a_second_engine
from inference.engine import EngineIdentity
from inference.lanes import LANES
from inference.model_files import ModelConfigError

ROOT = Path(__file__).resolve().parent.parent


def identity(engine: str, dtype: str = "float32") -> EngineIdentity:
    return EngineIdentity(model="tiny", revision="r1", dtype=dtype, device="cpu", engine=engine)


def test_a_worker_whose_engine_differs_from_its_pools_live_worker_stops_saying_why(queue):
    queue.beat("w1@node", lanes=LANES, status=identity("llama.cpp").fields(), ttl_s=10)
    with pytest.raises(ModelConfigError, match=r"w1@node on the llama\.cpp engine"):
        refuse_a_second_engine(queue, identity("transformers"), "w2@node")
    refuse_a_second_engine(queue, identity("llama.cpp"), "w2@node")  # the same engine joins
    refuse_a_second_engine(queue, identity("transformers"), "w1@node")  # w1 itself, restarted on another


def test_a_llama_worker_on_other_weights_than_its_pools_live_worker_stops_saying_why(queue):
    queue.beat("w1@node", lanes=LANES, status=identity("llama.cpp", "float16").fields(), ttl_s=10)
    with pytest.raises(ModelConfigError, match=r"w1@node on llama\.cpp with float16 weights.*runs float32"):
        refuse_a_second_engine(queue, identity("llama.cpp", "float32"), "w2@node")
    refuse_a_second_engine(queue, identity("llama.cpp", "float16"), "w2@node")  # the same weights join


def test_with_redis_unreachable_a_worker_starts_without_comparing_engines():
    from inference.store.queue import JobQueue

    down = JobQueue.from_url("redis://127.0.0.1:1/0", "edgeportal-test:down", pool="tiny@cpu")
    refuse_a_second_engine(down, identity("transformers"), "w2@node")  # no error: nothing to compare with


@pytest.mark.parametrize(
    ("lanes", "chunk_tokens", "short_between"),
    [(LANES, 256, True), (("short",), 256, False), (("long",), 256, False), (LANES, 0, False)],
)
def test_the_warm_up_runs_a_short_batch_beside_a_long_chunk_where_the_worker_will(
    queue, lanes, chunk_tokens, short_between
):
    from edgeportal.worker_step import _warm_up_sizes
    from inference.settings import SchedulerSettings
    from inference.store.queue import SettingsStore

    store = SettingsStore(queue, SchedulerSettings(long_chunk_tokens=chunk_tokens))
    sizes = _warm_up_sizes(store, 32, lanes)
    assert sizes["short_between"] is short_between and sizes["chunk_tokens"] == (chunk_tokens or 256)


# A process in a session of its own (as `make run` and systemd start the worker) lowers its session's priority.
LOWER_IN_OWN_SESSION = """
import sys
from edgeportal.worker_step import AUTOGROUP, lower_session_priority
print(lower_session_priority(int(sys.argv[1])), AUTOGROUP.read_text().strip())
"""


@pytest.mark.skipif(not Path("/proc/self/autogroup").exists(), reason="the kernel has no autogroups")
@pytest.mark.parametrize("own_session", [True, False])
def test_a_worker_leading_its_session_lowers_the_sessions_priority_and_no_other_does(own_session):
    result = subprocess.run(
        [sys.executable, "-c", LOWER_IN_OWN_SESSION, "13"], cwd=ROOT, capture_output=True, text=True,
        start_new_session=own_session,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    # A process in the first session (init's, as in some containers and CI runners) reads an empty autogroup.
    changed, _, autogroup = result.stdout.strip().partition(" ")
    if own_session:
        assert (changed, autogroup.endswith("nice 13")) == ("True", True)
    else:  # the test run's session: left as it was
        assert changed == "False" and autogroup == Path("/proc/self/autogroup").read_text().strip()
