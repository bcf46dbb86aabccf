import pytest

from edgeportal.latency.buckets import BOUNDS_MS, BUCKET_COUNT, bucket_label, percentile_from_buckets, rank


@pytest.mark.parametrize(
    ("percentile", "count", "expected"),
    [(50, 7, 4), (95, 20, 19), (99, 20, 20), (50, 1, 1), (99, 200, 198), (95, 60, 57), (1, 10, 1)],
)
def test_the_nearest_rank_is_p_percent_of_n_rounded_up(percentile, count, expected):
    assert rank(percentile, count) == expected


def test_a_percentile_of_nothing_is_refused():
    with pytest.raises(ValueError):
        rank(50, 0)


def test_a_bucket_percentile_interpolates_inside_the_bucket_holding_the_rank():
    counts = [0] * BUCKET_COUNT
    counts[BOUNDS_MS.index(10)] = 10  # ten jobs in 5-10 ms
    counts[BOUNDS_MS.index(100)] = 10  # ten in 50-100 ms
    # rank 10 of 20 is the last job of the 5-10 bucket; rank 19 is the 9th of ten in 50-100.
    assert percentile_from_buckets(50, counts, maximum=95.0) == 10.0
    assert percentile_from_buckets(95, counts, maximum=95.0) == pytest.approx(50 + 50 * 9 / 10)
    assert percentile_from_buckets(99, counts, maximum=95.0) == 95.0  # capped at the known maximum


def test_the_open_last_bucket_reads_up_to_the_maximum():
    counts = [0] * BUCKET_COUNT
    counts[-1] = 4
    assert percentile_from_buckets(50, counts, maximum=300_000.0) == pytest.approx(100_000 + 200_000 * 2 / 4)


def test_no_jobs_have_no_percentile():
    assert percentile_from_buckets(50, [0] * BUCKET_COUNT, maximum=None) is None


def test_bucket_labels_name_their_bounds():
    assert bucket_label(0) == "<1ms"
    assert bucket_label(BOUNDS_MS.index(2000)) == "1s-2s"
    assert bucket_label(BUCKET_COUNT - 1) == "≥100s"
