"""A job's decoding options and the text rules shared by outputs and streams (pure: no model)."""

import json

from hypothesis import given
from hypothesis import strategies as st

from inference.decoding import GREEDY, Decoding, final_text, settled_text
from tests.inference.test_planning import PROPERTIES


def test_a_greedy_chat_job_carries_nothing_and_every_option_survives_the_queue():
    assert GREEDY.to_json() == "" and Decoding.from_json("") == GREEDY
    options = Decoding(temperature=0.7, top_p=0.9, seed=42, stop=("\n\n", "END"), raw=True, stream=True,
                       json_schema='{"type":"object","required":["code"]}')  # fmt: skip
    assert Decoding.from_json(options.to_json()) == options
    assert Decoding.from_dict(json.loads(json.dumps(options.as_dict()))) == options
    assert json.loads(Decoding(json_schema='{"type":"integer"}').to_json()) == {"json_schema": '{"type":"integer"}'}
    assert options.sampled and not GREEDY.sampled


def test_the_output_ends_before_the_first_stop_string_and_says_so():
    assert final_text("  Line A stops. END more END", ("END",)) == ("Line A stops.", True)
    assert final_text("a\n\nb STOP c", ("STOP", "\n\n")) == ("a", True)  # the earliest, whichever is listed first
    assert final_text(" no stop here ", ("END",)) == ("no stop here", False)
    assert final_text("NUL\x00 dropped") == ("NUL dropped", False)


def test_a_stream_holds_back_what_the_next_token_may_change():
    assert settled_text("Line A st", ("stops",)) == "Line A"  # "st" may begin "stops"; the space may end it
    assert settled_text("Line A stops", ("stops",)) == "Line A"
    assert settled_text(" leading and trailing  ") == "leading and trailing"
    assert settled_text("half a character \ufffd") == "half a character"


text = st.text(alphabet="ab \n\ufffd\x00E", max_size=30)


@PROPERTIES
@given(raw=text, cut=st.integers(0, 30), stops=st.lists(st.text(alphabet="ab E\n", min_size=1, max_size=3), max_size=2))
def test_what_a_stream_sent_is_always_the_start_of_the_final_output(raw, cut, stops):
    """Whatever the tokens that follow, the text a stream sent so far begins the job's final output."""
    stop = tuple(stops)
    assert final_text(raw, stop)[0].startswith(settled_text(raw[:cut], stop))


@PROPERTIES
@given(raw=text, stops=st.lists(st.text(alphabet="ab E\n", min_size=1, max_size=3), max_size=2))
def test_a_finished_stream_sent_everything_but_what_it_held_back(raw, stops):
    stop = tuple(stops)
    final, stopped = final_text(raw, stop)
    if stopped:
        assert settled_text(raw, stop) == final


def test_text_decoded_token_by_token_is_the_text_decoded_at_once(tiny_model):
    """Chinese and a Euro sign take several tokens per character: the half-decoded ones wait."""
    from inference.decoding import Detokenizer

    ids = tiny_model.tokenizer("压机 P3 停机 10 分钟 · 5 € — line A", add_special_tokens=False).input_ids
    detokenizer = Detokenizer(tiny_model.decode)
    texts = [detokenizer.push(token) for token in ids]
    assert texts[-1] == tiny_model.decode(ids)
    assert all("\ufffd" not in text and texts[-1].startswith(text) for text in texts)
