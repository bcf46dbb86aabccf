"""The web side's keys (inference.store.web) keep the names a running node already holds, byte for byte."""

import pytest

from inference.store.web import WebStore


@pytest.fixture
def store(queue) -> WebStore:
    """The web side's keys under this test's prefix, through the queue's client."""
    return WebStore(queue.redis, queue.base)


def keys(queue) -> dict[str, int]:
    """This test's keys, without the prefix, and their time to live."""
    return {
        key.removeprefix(f"{queue.base}:"): queue.redis.ttl(key) for key in queue.redis.scan_iter(f"{queue.base}:*")
    }


def test_the_caches_keep_their_keys_and_time_to_live(queue, store):
    store.cache_result_set("k1", '{"output": "ok"}', 60)
    store.semantic_entry_add("g1", '{"text": "a"}', keep=2, ttl_s=90)
    store.semantic_entry_add("g1", '{"text": "b"}', keep=2, ttl_s=90)
    store.semantic_entry_add("g1", '{"text": "c"}', keep=2, ttl_s=90)
    assert store.cache_result_get("k1") == '{"output": "ok"}' and store.cache_result_get("k2") is None
    assert store.semantic_entries("g1", 256) == ['{"text": "c"}', '{"text": "b"}']  # newest first, `keep` kept
    ttls = keys(queue)
    assert set(ttls) == {"cache:result:k1", "cache:semantic:g1"}
    assert 55 <= ttls["cache:result:k1"] <= 60 and 85 <= ttls["cache:semantic:g1"] <= 90
    assert store.cache_entries_delete() == 2 and keys(queue) == {}


def test_a_rate_count_is_per_source_and_minute_and_outlives_its_minute(queue, store):
    assert [store.rate_hit(7, 1000), store.rate_hit(7, 1000), store.rate_hit(7, 1001)] == [1, 2, 1]
    ttls = keys(queue)
    assert set(ttls) == {"rate:7:1000", "rate:7:1001"} and 115 <= ttls["rate:7:1000"] <= 120


GROUP = '[1, null, "queue_full", ""]'


def test_refusals_and_the_trend_count_in_redis_minutes_under_their_keys(queue, store):
    store.refusal_count_add(GROUP, "the queue is full", 3600)
    [minute] = store.refusal_minutes()  # Redis' minute, the one counted in
    assert store.refusal_minute(minute) == ({GROUP: "1"}, {GROUP: "the queue is full"})
    assert store.refusal_counts([minute]) == [{GROUP: "1"}]
    assert store.refusal_flush_start() and not store.refusal_flush_start()
    assert "refusals:flushing" in keys(queue)
    store.refusal_flush_end()
    assert set(keys(queue)) == {"refusals:minutes", f"refusals:{minute}", f"refusals:{minute}:sample"}
    store.refusal_minute_forget(minute)
    assert keys(queue) == {}


def test_the_trend_keeps_counts_and_the_deepest_depth_per_minute(queue, store):
    store.trend_add({"jobs:done": 2}, 1200)
    store.trend_depths_keep({"short": 3}, 1200)
    store.trend_depths_keep({"short": 1}, 1200)
    now, hashes = store.trend_minutes(3)
    [(minute, flat)] = [(now - 2 + i, flat) for i, flat in enumerate(hashes) if flat]
    assert dict(zip(flat[::2], flat[1::2], strict=True)) == {"jobs:done": "2", "depth:short": "3"}
    ttls = keys(queue)
    assert set(ttls) == {f"trend:{minute}"} and 1195 <= ttls[f"trend:{minute}"] <= 1200


def test_the_exits_queue_is_named_under_the_prefix(queue, store):
    assert store.exits_queue() == f"{queue.base}:exits"
    assert store.exits_queue_length() == 0
