"""Template routing: a free prompt is matched to the closest template by its character n-grams, in any language."""

import pytest

from edgeportal.prompts.models import PromptTemplate
from edgeportal.prompts.routing import MIN_SCORE, fold, routing_text, template_suggestions
from edgeportal.prompts.services import template_save
from tests.conftest import make_template


def templates() -> list[PromptTemplate]:
    """Unsaved templates, as routing reads them: three in English, one in Chinese."""
    return [
        PromptTemplate(
            slug="defect", title="Defect description for QA",
            description="A camera found a defect: a short description for the QA inspector.",
            body="Camera {camera} detected {defect}. Write a short defect description for the QA inspector.",
            variables=[{"name": "camera", "example": "C3"}, {"name": "defect", "example": "a scratch"}],
        ),
        PromptTemplate(
            slug="translate", title="Translate a work order",
            description="A work order for a team that reads another language.",
            body="Translate this work order into {language}: {work_order}",
            variables=[{"name": "language", "type": "choice", "choices": ["English", "Spanish"]},
                       {"name": "work_order", "label": "Work order", "example": "Replace the worn belt."}],
        ),
        PromptTemplate(
            slug="steps", title="Inspection steps",
            description="A machine reports a fault: inspection steps for the technician.",
            body="{machine} reports {fault}. Give inspection steps for the technician.",
            variables=[{"name": "machine", "example": "Press line P3"}, {"name": "fault", "example": "overheating"}],
        ),
        PromptTemplate(
            slug="handover", title="交接班记录", description="把本班的设备状态整理成交接班记录，交给下一班。",
            body="请把以下内容整理成交接班记录：{notes}",
            variables=[{"name": "notes", "label": "本班情况", "example": "二号线换模完成，三号机待修"}],
        ),
    ]  # fmt: skip


def first(prompt: str, candidates=None) -> str | None:
    suggestions = template_suggestions(prompt, templates() if candidates is None else candidates)
    return suggestions[0].template.slug if suggestions else None


@pytest.mark.parametrize(
    ("prompt", "slug"),
    [
        ("Camera C7 saw a dent on the door panel, describe the defect for the QA inspector", "defect"),
        ("Please translate the work order for the night shift into Spanish", "translate"),
        ("The conveyor motor overheats: what should the technician inspect, step by step?", "steps"),
    ],
)
def test_an_english_prompt_is_routed_to_the_template_it_describes(prompt, slug):
    assert first(prompt) == slug


def test_a_chinese_prompt_is_routed_to_the_chinese_template_without_word_splitting():
    assert first("帮我把今天白班的设备状态写成交接班记录，二号线还在换模") == "handover"


def test_a_spanish_prompt_finds_the_english_template_through_the_words_they_share():
    assert first("La cámara C2 detectó un defecto en la pieza: descripción corta para el inspector de QA") == "defect"


@pytest.mark.parametrize(
    "prompt",
    [
        "Write a poem about the weekend barbecue",
        "What is on the cafeteria menu on Friday?",
        "明天天气怎么样，要不要带伞出门？",
    ],
)
def test_an_unrelated_prompt_gets_no_suggestion(prompt):
    assert template_suggestions(prompt, templates()) == []


@pytest.mark.parametrize("prompt", ["", "   ", "defect", "QA ?!", "交接班"])
def test_a_prompt_too_short_to_say_what_it_is_about_gets_no_suggestion(prompt):
    assert template_suggestions(prompt, templates()) == []


def test_two_templates_that_fit_about_equally_are_both_suggested_best_first_within_the_limit():
    prompt = "Camera C3 found a defect; give inspection steps for the technician"
    suggestions = template_suggestions(prompt, templates(), limit=2)
    assert [s.template.slug for s in suggestions] == ["steps", "defect"]
    assert 1 >= suggestions[0].score >= suggestions[1].score >= MIN_SCORE
    assert len(template_suggestions(prompt, templates(), limit=1)) == 1


def test_a_runner_up_far_behind_the_best_is_not_suggested():
    prompt = "Camera C7 saw a dent on the door panel, describe the defect for the QA inspector"
    assert [s.template.slug for s in template_suggestions(prompt, templates(), limit=2)] == ["defect"]


def test_only_the_templates_given_are_candidates():
    others = [t for t in templates() if t.slug != "defect"]
    assert first("Camera C7 saw a dent on the door panel, describe the defect for the QA inspector", others) != "defect"


def test_full_width_letters_case_and_accents_do_not_matter():
    assert fold("ＤＥＦＥＣＴ Cámara Übersetzung") == "defect camara ubersetzung"
    assert first("ＣＡＭＥＲＡ Ｃ７ SAW A DENT, DESCRIBE THE DEFECT FOR THE QA INSPECTOR") == "defect"


def test_the_routing_text_has_the_variables_labels_and_examples_but_no_placeholders_or_system_prompt():
    template = templates()[1]
    template.system_prompt = "You are a concise assistant."
    text = routing_text(template)
    assert "Work order" in text and "Replace the worn belt." in text and "Spanish" in text and "language" in text
    assert "{" not in text and "concise" not in text


def test_a_deleted_template_is_never_suggested(db):
    make_template(slug="defect", title="Defect description", body="Camera {camera} detected {defect}. Describe it.")
    prompt = "Camera C7 detected a dent, describe the defect"
    assert first(prompt, PromptTemplate.objects.all()) == "defect"
    PromptTemplate.objects.filter(slug="defect").delete()
    assert first(prompt, PromptTemplate.objects.all()) is None


def test_an_edited_template_is_scored_on_its_new_text(db):
    template = make_template(slug="notice", title="Line notice", body="Write a notice for the line: {text}")
    make_template(slug="other", title="Shift report", body="Summarise the shift: {notes}")
    old, new = "Write a notice for the line: it restarts at noon", "Give the forklift safety checklist for drivers"
    assert first(old, PromptTemplate.objects.all()) == "notice"
    # Title and description edits make no new version: the routing text itself is what the cache is keyed on.
    template.title, template.description = "Forklift safety checklist", "The safety checklist for forklift drivers."
    template.body = "Give the forklift safety checklist for {who}."
    template_save(template=template)
    assert first(new, PromptTemplate.objects.all()) == "notice"
    assert first(old, PromptTemplate.objects.all()) != "notice"
