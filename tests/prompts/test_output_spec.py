"""Declared outputs: parsed and checked where an admin writes them (editor, YAML import, the model's clean)."""

import pytest
from django.core.exceptions import ValidationError

from edgeportal.prompts.models import PromptTemplate
from edgeportal.prompts.output_spec import OutputSpec, OutputSpecError, parse_outputs
from edgeportal.prompts.yaml_io import ImportProblem, templates_export, templates_import
from tests.conftest import make_template

THREE = [
    {"name": "ticket", "language": "zh", "instruction": "Summarise for the quality ticket."},
    {"name": "mes", "language": "en", "format": "json", "from": "ticket",
     "schema": {"type": "object", "properties": {"code": {"type": "string"}}, "required": ["code"]}},
    {"name": "screen", "instruction": "One short line for the line screen.", "on_mismatch": "deliver"},
]  # fmt: skip


def test_three_outputs_parse_with_defaults_filled_in():
    ticket, mes, screen = parse_outputs(THREE, default_language="es")
    assert ticket == OutputSpec(name="ticket", language="zh", instruction="Summarise for the quality ticket.")
    assert mes.format == "json" and mes.source == "ticket" and not mes.from_request
    assert mes.schema["required"] == ["code"]
    assert screen.language == "es" and screen.on_mismatch == "deliver" and screen.from_request


def test_an_empty_declaration_means_the_single_text_output():
    assert parse_outputs([]) == [] and parse_outputs(None) == []


def test_as_dict_round_trips_and_leaves_defaults_out():
    specs = parse_outputs(THREE)
    assert parse_outputs([spec.as_dict() for spec in specs]) == specs
    expected = {"name": "ticket", "language": "zh", "instruction": "Summarise for the quality ticket."}
    assert specs[0].as_dict() == expected


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ({"name": "x"}, "must be a list"),
        ([{"name": "Ticket"}], "lower-case"),
        ([{"name": "a"}, {"name": "a"}], "used twice"),
        ([{"name": "request"}], "reserved"),
        ([{"name": "a", "language": "chinese!"}], "BCP 47"),
        ([{"name": "a", "format": "xml"}], "text or json"),
        ([{"name": "a", "format": "json"}], "needs a JSON Schema"),
        ([{"name": "a", "format": "json", "schema": {"type": "nonsense"}}], "not a valid JSON Schema"),
        ([{"name": "a", "schema": {"type": "object"}}], "needs the json format"),
        ([{"name": "a", "from": "b"}, {"name": "b"}], "declared before it"),
        ([{"name": "a", "from": "a"}], "declared before it"),
        ([{"name": "a", "on_mismatch": "drop"}], "deliver or hold"),
        ([{"name": "a", "max_new_tokens": 0}], "from 1 to 1024"),
        ([{"name": "a", "max_new_tokens": True}], "from 1 to 1024"),
        ([{"name": "a", "colour": "red"}], "unknown keys colour"),
        ([{"name": "a", "instruction": 5}], "must be text"),
        ([{"name": f"o{i}"} for i in range(7)], "At most 6"),
        (["ticket"], "must be an object"),
        ([{"name": "a", "format": "json", "schema": {"not": {"$ref": "https://example.com/x.json"}}}], "stand alone"),
        ([{"name": "a", "format": "json", "schema": {"$ref": "#/definitions/missing"}}], "stand alone"),
        ([{"name": "a", "format": "json", "schema": {"$schema": [1]}}], "JSON Schema"),
    ],
)
def test_a_bad_declaration_says_what_is_wrong(raw, says):
    with pytest.raises(OutputSpecError, match=says):
        parse_outputs(raw)


@pytest.mark.django_db
def test_a_template_with_bad_outputs_does_not_validate():
    template = PromptTemplate(slug="t", title="T", body="Hello", outputs=[{"name": "a", "from": "nowhere"}])
    with pytest.raises(ValidationError) as error:
        template.full_clean()
    assert "outputs" in error.value.message_dict


@pytest.mark.django_db
def test_outputs_are_versioned_with_the_template():
    template = make_template(slug="t", title="T", body="Hello")
    assert template.version == 1
    template.outputs = THREE
    from edgeportal.prompts.services import template_save

    assert template_save(template=template) is not None
    assert template.version == 2 and template.versions.get(version=2).outputs == THREE
    assert template.versions.get(version=1).outputs == []


@pytest.mark.django_db
def test_yaml_export_and_import_carry_outputs():
    make_template(slug="t", title="T", body="Hello", outputs=THREE)
    text = templates_export()
    assert "ticket" in text and "screen" in text
    PromptTemplate.objects.all().delete()
    templates_import(text)
    assert PromptTemplate.objects.get(slug="t").outputs == THREE


@pytest.mark.django_db
def test_yaml_import_refuses_bad_outputs_by_name():
    text = "templates:\n- slug: t\n  title: T\n  body: Hello\n  outputs:\n  - name: a\n    format: xml\n"
    with pytest.raises(ImportProblem, match=r"outputs.*text or json"):
        templates_import(text)
