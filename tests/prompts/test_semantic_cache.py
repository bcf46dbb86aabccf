"""The semantic cache's rules (edgeportal.prompts.semantic_cache): which requests may answer each other, the
decoding a template's jobs carry, and the template setting that turns it on, with its range."""

import numpy as np
import pytest
import yaml
from django.core.exceptions import ValidationError

from edgeportal.prompts.forms import TemplateForm
from edgeportal.prompts.semantic_cache import VALUE_SEPARATOR, Entry, best_match, semantic_codes, semantic_decoding
from edgeportal.prompts.yaml_io import ImportProblem, templates_export, templates_import
from inference.decoding import GREEDY, Decoding
from tests.conftest import make_template

KEY_FIELDS = {"system_prompt": "", "max_new_tokens": 8, "template_version": 1, "model": None}


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("The belt of conveyor C2 is worn", "Conveyor C2 has a worn belt"),
        ("Weld seam 3,5 mm too wide on frame F7", "Frame F7: weld seam 3.5 mm too wide"),  # decimal comma
        ("相机Ｃ３检测到划痕", "相机C3发现了划痕"),  # full-width, and CJK around the code
        ("A scratch on housing H2", "Housing H2 has a scratch"),  # "A" starts a sentence: a word
    ],
)
def test_paraphrases_carry_the_same_codes(a, b):
    assert semantic_codes(a) == semantic_codes(b)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("The belt of conveyor C2 is worn", "The belt of conveyor C12 is worn"),
        ("Oven at 180 °C", "Oven at 180 °F"),
        ("Line A restarts", "Line B restarts"),
        ("Order WO-20931", "Order WO-20932"),
        ("A scratch on the left side", "A scratch on the right side"),
        ("Replace it within 30 minutes", "Replace it within 30 hours"),
        ("No coolant flow", "Coolant flow"),
        ("外壳左侧有划痕", "外壳右侧有划痕"),
        ("Druck zu hoch", "Druck zu niedrig"),
        ("Temperature at -5 °C", "Temperature at 5 °C"),  # the sign
        ("Move the pallet from bay C3 to bay C4", "Move the pallet from bay C4 to bay C3"),  # the order of ids
        ("Fit a 1/2 inch hose", "Fit a 2/1 inch hose"),
        ("Line three reports a jam", "Line four reports a jam"),  # numbers as words
        ("Kratzer außen am Teil", "Kratzer innen am Teil"),
        ("Teil zu groß", "Teil zu klein"),
        ("压机三号线", "压机四号线"),
    ],
)
def test_a_near_miss_or_an_opposite_carries_other_codes(a, b):
    assert semantic_codes(a) != semantic_codes(b)


def test_each_value_is_compared_with_its_own_variables_value():
    swapped = semantic_codes(f"C3{VALUE_SEPARATOR}C4"), semantic_codes(f"C4{VALUE_SEPARATOR}C3")
    assert swapped[0] == [[["C3"], [], []], [["C4"], [], []]] and swapped[0] != swapped[1]
    # within one value an id may move past a number, and the kept words come in any order
    assert semantic_codes("Within 30 minutes, replace press P1") == semantic_codes("Replace press P1 within 30 minutes")
    assert semantic_codes("left and upper corner") == semantic_codes("upper left corner")


def _unit(values) -> np.ndarray:
    vector = np.asarray(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def _entry(text: str, vector: np.ndarray) -> Entry:
    return Entry(text, semantic_codes(text), vector, f"answer to {text}", 5, 3, "stop", 0.0)


def test_the_closest_entry_with_the_same_codes_matches_at_the_threshold():
    close, closer = _entry("a dent on C3", _unit([1, 0.3, 0])), _entry("dent, C3", _unit([1, 0.1, 0]))
    asked = _unit([1, 0, 0])
    entry, similarity = best_match(asked, semantic_codes("C3 has a dent"), [close, closer], 0.99)
    assert entry is closer and similarity == pytest.approx(0.995, abs=1e-3)
    assert best_match(asked, semantic_codes("C3 has a dent"), [close, closer], 0.999)[0] is None


def test_an_entry_with_other_codes_never_matches_even_with_the_same_embedding():
    stored = _entry("a dent on C4", _unit([1, 0, 0]))
    assert best_match(_unit([1, 0, 0]), semantic_codes("a dent on C3"), [stored], 0.8) == (None, -1.0)


def test_an_entry_kept_in_redis_form_still_matches_its_own_request():
    vector = _unit(np.random.default_rng(0).normal(size=384))
    kept = Entry.loads(_entry("a dent on C3", vector).dumps())  # float16 on the way
    assert kept.codes == [[["C3"], [], []]] and kept.output == "answer to a dent on C3"
    assert best_match(vector, semantic_codes("C3: a dent"), [kept], 0.999)[0] is not None


@pytest.mark.django_db
def test_a_template_without_the_setting_leaves_its_jobs_decoding_alone(notice_template):
    assert semantic_decoding(GREEDY, template=notice_template, values={"language": "es"}, key_fields=KEY_FIELDS) == (
        GREEDY
    )


@pytest.mark.django_db
def test_a_templates_job_carries_its_free_text_and_a_group_of_its_fixed_values(notice_template, settings):
    notice_template.semantic_cache = 0.93

    def decoded(values, decoding=GREEDY):
        return semantic_decoding(decoding, template=notice_template, values=values, key_fields=KEY_FIELDS)

    first = decoded({"line": "A", "minutes": 5, "language": "Spanish"})
    assert (first.semantic_threshold, first.semantic_text) == (0.93, "Spanish")
    assert decoded({"line": "A", "minutes": 5, "language": "español"}).semantic_group == first.semantic_group
    assert decoded({"line": "B", "minutes": 5, "language": "Spanish"}).semantic_group != first.semantic_group
    assert decoded({"line": "A", "minutes": 6, "language": "Spanish"}).semantic_group != first.semantic_group
    stops = Decoding(stop=("\n",))  # another decoding answers otherwise: another group
    assert decoded({"line": "A", "minutes": 5, "language": "Spanish"}, stops).semantic_group != first.semantic_group
    sampled = Decoding(temperature=0.7)
    assert decoded({"line": "A", "minutes": 5, "language": "Spanish"}, sampled) == sampled  # one draw of many
    assert decoded({"line": "A", "minutes": 5, "language": ""}) == GREEDY  # no free text: the exact cache's
    settings.EDGE_CACHE_ENABLED = False
    assert decoded({"line": "A", "minutes": 5, "language": "Spanish"}) == GREEDY


@pytest.mark.django_db
def test_a_template_with_outputs_refuses_the_setting_by_name():
    with pytest.raises(ValidationError) as refused:
        make_template(slug="t", title="T", body="Hi {name}.", semantic_cache=0.95,
                      outputs=[{"name": "ticket", "language": "zh"}])  # fmt: skip
    assert "has no semantic cache" in str(refused.value.message_dict["semantic_cache"])


@pytest.mark.django_db
@pytest.mark.parametrize("value", [0.5, 1.0, float("nan")])
def test_a_threshold_out_of_range_is_refused_with_its_field(value):
    with pytest.raises(ValidationError) as refused:
        make_template(slug="t", title="T", body="Hi {name}.", semantic_cache=value)
    assert "between 0.8 and 0.999" in str(refused.value.message_dict["semantic_cache"])


@pytest.mark.django_db
def test_the_editor_takes_an_empty_threshold_as_off_and_refuses_text():
    base = {"slug": "t", "title": "T", "body": "Hi {name}.", "language": "en", "max_new_tokens": 8}
    form = TemplateForm(data={**base, "semantic_cache": ""})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["semantic_cache"] is None
    form = TemplateForm(data={**base, "semantic_cache": "close"})
    assert not form.is_valid() and "semantic_cache" in form.errors
    form = TemplateForm(data={**base, "semantic_cache": "0.95"})
    assert form.is_valid(), form.errors
    assert form.save().semantic_cache == 0.95


@pytest.mark.django_db
def test_the_setting_is_exported_and_imported_and_changing_it_is_not_a_new_version():
    template = make_template(slug="t", title="T", body="Hi {name}.", semantic_cache=0.95)
    exported = yaml.safe_load(templates_export())["templates"][0]
    assert exported["semantic_cache"] == 0.95
    exported["semantic_cache"] = None
    templates_import(yaml.safe_dump({"templates": [exported]}))
    template.refresh_from_db()
    assert template.semantic_cache is None and template.version == 1  # what the model sees is the same
    with pytest.raises(ImportProblem, match="semantic_cache: must be a number or empty"):
        templates_import(yaml.safe_dump({"templates": [{**exported, "semantic_cache": "high"}]}))


@pytest.mark.django_db
def test_the_copy_bias_items_do_not_split_the_group_of_paraphrases():
    from edgeportal.jobs.entry import _with_output_controls

    template = make_template(slug="t", title="T", body="Describe: {what}", copy_bias=2.0, semantic_cache=0.9)

    def group(what: str) -> str:
        decoding = _with_output_controls(GREEDY, template, f"Describe: {what}")
        assert decoding.copy_items  # the items are there, in the order the request names them
        return semantic_decoding(
            decoding, template=template, values={"what": what}, key_fields=KEY_FIELDS
        ).semantic_group

    assert group("Pump P3 shows error 42") == group("Error 42 shown on pump P3") == group("pump P3: error 42")
