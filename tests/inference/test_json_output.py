"""JSON outputs held to their JSON Schema while they decode, on the tiny model (random weights: left free, it writes
new lines and word salad), beside free rows of the same batch."""

import json

import jsonschema
import pytest

from inference import json_output
from inference.decoding import GREEDY, Decoding
from inference.generation import GenerationParams
from inference.json_output import MAX_NUMBER_CHARACTERS, JsonRows, schema_problem, vocabulary_of
from tests.inference.stepping import run_in_steps

TICKET = {
    "type": "object",
    "properties": {"code": {"type": "string", "maxLength": 8}, "severity": {"type": "integer"}},
    "required": ["code", "severity"],
}
AS_TICKET = Decoding(json_schema=json.dumps(TICKET, separators=(",", ":")))
# The tiny model spends up to 12 new lines in every gap the JSON allows white space in: room to close it.
ROOM = 160
PARAMS = GenerationParams(max_new_tokens=ROOM)
# The schema row's prompt is the shorter: it is left-padded, and its output starts after the batch's prompt length.
PROMPTS = ["Dent.", "Camera C3 detected a dent on plate P3 near the left weld seam. Describe it for the ticket."]


def keeps_ticket(text: str) -> bool:
    jsonschema.validate(json.loads(text), TICKET)
    return True


def test_a_schema_row_writes_json_that_keeps_its_schema_and_its_free_batch_mate_is_as_alone(tiny_model):
    schema_row, free_row = tiny_model.generate_batch(
        PROMPTS, PARAMS, decodings=[AS_TICKET, GREEDY], max_new_tokens_each=[ROOM, 12]
    ).generations
    assert keeps_ticket(schema_row.text)
    assert schema_row.finish_reason == "stop" and schema_row.new_tokens < ROOM  # it ended once the JSON was whole
    [alone] = tiny_model.generate_batch(PROMPTS[1:], GenerationParams(max_new_tokens=12)).generations
    assert free_row == alone
    [unconstrained] = tiny_model.generate_batch(PROMPTS[:1], GenerationParams(max_new_tokens=12)).generations
    with pytest.raises(ValueError):
        json.loads(unconstrained.text)  # what the same prompt gives without its schema


def test_sampled_rows_with_a_schema_draw_different_json_that_all_keeps_it(tiny_model):
    decodings = [Decoding(temperature=1.0, seed=seed, json_schema=AS_TICKET.json_schema) for seed in (1, 2, 3)]
    outputs = tiny_model.generate_batch(PROMPTS[:1] * 3, PARAMS, decodings=decodings).generations
    assert all(keeps_ticket(output.text) for output in outputs)
    assert len({output.text for output in outputs}) == 3


def test_in_steps_with_pauses_a_schema_row_gives_what_one_call_gives(tiny_model):
    decodings = [AS_TICKET, Decoding(temperature=1.0, seed=4, json_schema=AS_TICKET.json_schema)]
    stepped, _ = run_in_steps(
        tiny_model, PROMPTS, PARAMS, decodings=decodings, chunk_tokens=4, pause_wanted=lambda: True
    )
    assert stepped.generations == tiny_model.generate_batch(PROMPTS, PARAMS, decodings=decodings).generations
    assert all(keeps_ticket(output.text) for output in stepped.generations)


def test_a_batch_without_a_schema_row_never_touches_the_enforcer(tiny_model, monkeypatch):
    def untouchable(*args, **kwargs):
        raise AssertionError("the enforcer was used")

    monkeypatch.setattr(json_output, "vocabulary_of", untouchable)
    monkeypatch.setattr(json_output, "JsonRows", untouchable)
    decodings = [GREEDY, Decoding(temperature=1.0, seed=1, stop=("x",))]
    processors, _ = tiny_model._controls(decodings, [4, 4], None, prompt_length=3)
    assert [type(p).__name__ for p in processors] == ["_RowSampling"]
    assert tiny_model._controls([GREEDY, GREEDY], [4, 4], None, prompt_length=3)[0] == []
    assert len(tiny_model.generate_batch(PROMPTS, GenerationParams(max_new_tokens=4), decodings=decodings).generations)


def test_a_schema_the_enforcer_cannot_read_ends_its_row_at_once_with_why_in_the_log(tiny_model, caplog):
    decodings = [Decoding(json_schema="{not json"), GREEDY]
    output = tiny_model.generate_batch(PROMPTS, GenerationParams(max_new_tokens=6), decodings=decodings)
    broken, free = output.generations
    assert (broken.text, broken.new_tokens, broken.finish_reason) == ("", 0, "stop")
    assert free.new_tokens == 6
    assert "JSON output not generated: JSONDecodeError" in caplog.text
    assert schema_problem("{not json").startswith("JSONDecodeError")
    assert schema_problem(AS_TICKET.json_schema) is None


def rows_for(tiny_model, schema: dict) -> JsonRows:
    vocabulary = vocabulary_of(tiny_model.tokenizer, tiny_model.stop_ids)
    return JsonRows([Decoding(json_schema=json.dumps(schema))], vocabulary)


def after(rows: JsonRows, tokens: list[int]) -> list[int]:
    """The tokens allowed after these, fed one at a time as a decoding feeds them."""
    for size in range(len(tokens)):
        rows.allowed(0, tokens[:size])
    return rows.allowed(0, tokens)


def ids(tiny_model, *pieces: str) -> list[int]:
    tokens = [tiny_model.tokenizer(piece, add_special_tokens=False).input_ids for piece in pieces]
    assert all(len(token) == 1 for token in tokens)
    return [token for [token] in tokens]


def test_the_spaces_a_string_begins_with_count_toward_its_max_length(tiny_model):
    """lm-format-enforcer 0.11.3 alone lets " ny ny ny" pass as 8 characters (inference.json_output patches it)."""
    rows = rows_for(tiny_model, TICKET)
    opened = ids(tiny_model, '{"', "c", "ode", '":"')
    [ny] = ids(tiny_model, " ny")
    assert ny in after(rows, [*opened, ny])  # 3 characters, then 6
    assert ny not in after(rows, [*opened, ny, ny])  # 9 would be more than 8


def test_a_number_ends_after_its_most_characters(tiny_model):
    rows = rows_for(tiny_model, {"type": "object", "properties": {"n": {"type": "integer"}}})
    [six] = ids(tiny_model, "6")
    start = ids(tiny_model, '{"', "n", '":')
    assert six in after(rows, [*start, *[six] * (MAX_NUMBER_CHARACTERS - 1)])
    closing = after(rows, [*start, *[six] * MAX_NUMBER_CHARACTERS])
    assert six not in closing and ids(tiny_model, "}")[0] in closing


def test_a_finished_json_allows_only_the_end_of_text(tiny_model):
    rows = rows_for(tiny_model, {"type": "object", "properties": {"n": {"type": "integer"}}})
    assert sorted(after(rows, ids(tiny_model, '{"', "n", '":', "1", "}"))) == sorted(tiny_model.stop_ids)


def test_the_tokenizer_data_is_built_once_per_tokenizer(tiny_model):
    first = vocabulary_of(tiny_model.tokenizer, tiny_model.stop_ids)
    assert vocabulary_of(tiny_model.tokenizer, tiny_model.stop_ids) is first


@pytest.mark.parametrize("text", ["游戏机卡住了", "Presión de 5 bar en la línea", "Ölstand: 5 mm, Größe ≥ 3"])
def test_a_string_takes_characters_its_tokenizer_writes_in_several_tokens(tiny_model, text):
    """Each token of a JSON string in Chinese, Spanish or German is allowed in turn (a character written in
    several byte tokens closed the whole JSON before json_output added every character to the alphabet)."""
    rows = rows_for(tiny_model, {"type": "object", "properties": {"line": {"type": "string"}}})
    tokens = tiny_model.tokenizer(json.dumps({"line": text}, ensure_ascii=False), add_special_tokens=False).input_ids
    for size in range(len(tokens)):
        assert tokens[size] in after(rows, tokens[:size]), tiny_model.tokenizer.decode(tokens[: size + 1])
    assert sorted(after(rows, tokens)) == sorted(tiny_model.stop_ids)
