"""A batch's steps as events: settled text for the jobs that stream (with its offset), token counts for the
others, and one round trip per step."""

from inference.decoding import GREEDY, Decoding
from inference.store.job_events import TextEvent
from inference.token_stream import PROGRESS_EVERY, TokenStreams


def test_streaming_jobs_get_their_text_a_copy_gets_its_run_and_the_others_only_counts(tiny_model):
    ids = tiny_model.tokenizer(" Line A stops at ten today", add_special_tokens=False).input_ids
    published = []
    # Row 0 runs job 1, which streams, and job 3, an identical job that streams too; row 1 runs job 2 (no stream).
    streams = TokenStreams([[1, 3], [2]], {1, 3}, [Decoding(stop=("today",)), GREEDY], tiny_model.decode,
                           published.append)  # fmt: skip
    for token in (ids * 2)[:PROGRESS_EVERY]:
        streams([token, token])
    text = {job_id: "" for job_id in (1, 2, 3)}
    for events in published:
        for job_id, event in events.items():
            assert event.offset == len(text[job_id])  # each piece starts where the last ended
            text[job_id] += event.text
    assert text[1] == text[3] == "Line A stops at ten" and text[2] == ""  # "today" is a stop string: held back
    assert published[-1][2] == TextEvent("", 0, PROGRESS_EVERY)  # job 2: its count only, every few steps
    assert streams.first_at is not None


def test_a_batch_without_streaming_jobs_publishes_only_counts_every_few_steps(tiny_model):
    published = []
    streams = TokenStreams([[1]], set(), [GREEDY], tiny_model.decode, published.append)
    for _ in range(2 * PROGRESS_EVERY):
        streams([42])
    assert published == [{1: TextEvent("", 0, PROGRESS_EVERY)}, {1: TextEvent("", 0, 2 * PROGRESS_EVERY)}]
