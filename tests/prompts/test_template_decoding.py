"""How a template's jobs are decoded: repetition control (also for free prompts) and candidates, their range,
their versions, their import and export, and the decoding its jobs are queued with."""

import pytest
import yaml
from django.core.exceptions import ValidationError

from edgeportal.jobs.entry import job_submit
from edgeportal.prompts.models import PromptTemplate
from edgeportal.prompts.services import template_save
from edgeportal.prompts.yaml_io import ImportProblem, templates_export, templates_import
from inference.decoding import Decoding
from tests.conftest import make_template
from tests.test_settings import manage

pytestmark = pytest.mark.django_db


def test_a_new_template_takes_the_nodes_defaults(settings):
    assert (make_template(slug="a", title="A", body="Hi.").no_repeat_ngram, PromptTemplate().repetition_penalty) == (
        4, 1.15,
    )  # fmt: skip
    settings.EDGE_NO_REPEAT_NGRAM, settings.EDGE_REPETITION_PENALTY = 3, 1.3
    template = make_template(slug="b", title="B", body="Hi.")
    assert (template.no_repeat_ngram, template.repetition_penalty) == (3, 1.3)


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"no_repeat_ngram": 1}, "no_repeat_ngram", "Must be 0 (off) or between 2 and 16"),
        ({"no_repeat_ngram": 17}, "no_repeat_ngram", "between 2 and 16"),
        ({"repetition_penalty": 0.9}, "repetition_penalty", "between 1 (off) and 2"),
        ({"repetition_penalty": float("nan")}, "repetition_penalty", "between 1 (off) and 2"),
    ],
)
def test_a_control_out_of_range_is_refused_with_its_field(fields, field, message):
    with pytest.raises(ValidationError) as refused:
        make_template(slug="t", title="T", body="Hi.", **fields)
    assert message in str(refused.value.message_dict[field])


def test_a_change_of_control_is_a_new_version_that_keeps_what_it_ran():
    template = make_template(slug="t", title="T", body="Hi.")
    template.no_repeat_ngram = 0
    version = template_save(template=template)
    assert version.version == 2 and version.no_repeat_ngram == 0
    assert template.versions.get(version=1).no_repeat_ngram == 4


def test_templates_export_and_import_their_control_and_a_bad_one_names_the_field():
    make_template(slug="t", title="T", body="Hi.", no_repeat_ngram=6, repetition_penalty=1.2)
    exported = yaml.safe_load(templates_export())["templates"][0]
    assert (exported["no_repeat_ngram"], exported["repetition_penalty"]) == (6, 1.2)
    exported["no_repeat_ngram"] = 3
    assert templates_import(yaml.safe_dump({"templates": [exported]})) == ["updated t to version 2"]
    bad = [
        ("high", "repetition_penalty", "must be a number"),
        (True, "repetition_penalty", "must be a number"),
        ("x", "no_repeat_ngram", "whole number"),
        (1, "no_repeat_ngram", "between 2 and 16"),
    ]
    for value, field, message in bad:
        with pytest.raises(ImportProblem, match=f"template 't' {field}: .*{message}"):
            templates_import(yaml.safe_dump({"templates": [{**exported, field: value}]}))


def test_the_editor_refuses_a_bad_control_with_a_message(client, admin_user):
    from tests.prompts.test_editor import form_data

    client.force_login(admin_user)
    for field, value, message in [
        ("no_repeat_ngram", "1", "between 2 and 16"),
        ("repetition_penalty", "three", "Enter a number"),
    ]:
        response = client.post("/templates/new/", form_data(**{field: value}))
        assert response.status_code == 400 and message in response.content.decode()
    assert client.post("/templates/new/", form_data(no_repeat_ngram="0", repetition_penalty="1.3")).status_code == 302
    assert PromptTemplate.objects.get(slug="notice").repetition_penalty == 1.3
    assert client.post("/templates/new/", form_data(slug="plain")).status_code == 302  # left out: the defaults
    plain = PromptTemplate.objects.get(slug="plain")
    assert (plain.no_repeat_ngram, plain.repetition_penalty) == (4, 1.15)


@pytest.mark.django_db(transaction=True)
def test_a_jobs_decoding_carries_its_templates_control_or_the_nodes(queue, settings):
    make_template(slug="t", title="T", body="Describe {x}.", no_repeat_ngram=0, repetition_penalty=1.2)
    job = job_submit(template_slug="t", variables={"x": "a dent"}, allow_free_prompt=False)
    assert Decoding.from_dict(job.decoding) == Decoding(repetition_penalty=1.2)
    settings.EDGE_NO_REPEAT_NGRAM, settings.EDGE_REPETITION_PENALTY = 5, 1.0
    free = job_submit(prompt="Describe a dent.", allow_free_prompt=True)
    assert Decoding.from_dict(free.decoding) == Decoding(no_repeat_ngram=5)
    taken, _ = queue.take("short", worker="w", max_count=10, max_tokens=10**6, est_ms=0, lease_ms=60_000)
    assert {job.job_id: job.decoding for job in taken}[free.pk] == Decoding(no_repeat_ngram=5)  # what a worker runs


def test_a_bad_setting_stops_the_node_at_start_with_a_clear_message():
    result = manage("check", EDGE_NO_REPEAT_NGRAM="1")
    assert result.returncode != 0 and "EDGE_NO_REPEAT_NGRAM must be 0 (off) or between 2 and 16" in result.stderr
    result = manage("check", EDGE_REPETITION_PENALTY="lots")
    assert result.returncode != 0 and "EDGE_REPETITION_PENALTY must be between 1 (off) and 2" in result.stderr


def test_candidates_are_checked_versioned_and_exported():
    for bad in (0, 9):
        with pytest.raises(ValidationError, match="between 1 and 8"):
            make_template(slug=f"bad{bad}", title="T", body="Hi.", candidates=bad)
    template = make_template(slug="t", title="T", body="Hi.")
    assert template.candidates == 1
    template.candidates = 4
    assert template_save(template=template).candidates == 4  # a new version: what the model makes changed
    exported = yaml.safe_load(templates_export())["templates"][0]
    assert exported["candidates"] == 4
    with pytest.raises(ImportProblem, match="template 't' candidates: "):
        templates_import(yaml.safe_dump({"templates": [{**exported, "candidates": "four"}]}))


def test_an_output_run_is_judged_in_its_own_language_and_a_json_run_has_one_candidate():
    from edgeportal.outputs.services import run_decoding
    from edgeportal.prompts.output_spec import parse_outputs

    text, record = parse_outputs(
        [{"name": "ticket", "language": "zh"}, {"name": "mes", "format": "json", "schema": {"type": "object"}}],
        default_language="en",
    )
    asked = Decoding(candidates=3, language="en")
    assert run_decoding(text, asked) == Decoding(candidates=3, language="zh")
    assert (run_decoding(record, asked).candidates, run_decoding(record, asked).language) == (1, "")


def test_a_jobs_decoding_carries_its_requests_ids_and_the_copy_bias_of_its_template_or_the_node(settings):
    make_template(slug="t", title="T", body="Describe {x} on press P3.", copy_bias=3.0, no_repeat_ngram=0,
                  repetition_penalty=1.0)  # fmt: skip
    job = job_submit(template_slug="t", variables={"x": "a 3.5 mm dent"}, allow_free_prompt=False)
    assert Decoding.from_dict(job.decoding) == Decoding(copy_items=("3.5 mm", "P3"), copy_bias=3.0)
    settings.EDGE_NO_REPEAT_NGRAM, settings.EDGE_REPETITION_PENALTY, settings.EDGE_COPY_BIAS = 0, 1.0, 1.5
    free = job_submit(prompt="Conveyor C2 stopped at 14:20.", allow_free_prompt=True)
    assert Decoding.from_dict(free.decoding) == Decoding(copy_items=("C2", "14:20"), copy_bias=1.5)
    plain = job_submit(prompt="Describe a dent.", allow_free_prompt=True)  # nothing to carry: no bias
    assert plain.decoding == {}
    queued = Decoding.from_json(Decoding.from_dict(free.decoding).to_json())  # as the queue carries it
    assert queued.copy_items == ("C2", "14:20")


def test_the_copy_bias_is_checked_versioned_and_exported_and_old_templates_keep_it_off(settings):
    assert make_template(slug="new", title="N", body="Hi.").copy_bias == settings.EDGE_COPY_BIAS == 2.0
    with pytest.raises(ValidationError) as refused:
        make_template(slug="t", title="T", body="Hi.", copy_bias=9.0)
    assert "Must be between 0 (off) and 8" in str(refused.value.message_dict["copy_bias"])
    template = make_template(slug="c", title="C", body="Hi.", copy_bias=1.0)
    template.copy_bias = 0.0
    version = template_save(template=template)
    assert (version.version, version.copy_bias, template.versions.get(version=1).copy_bias) == (2, 0.0, 1.0)
    exported = next(t for t in yaml.safe_load(templates_export())["templates"] if t["slug"] == "c")
    assert exported["copy_bias"] == 0.0
    with pytest.raises(ImportProblem, match="copy_bias: must be a number"):
        templates_import(yaml.safe_dump({"templates": [{**exported, "copy_bias": "much"}]}))


def test_a_bad_copy_bias_setting_stops_the_node_at_start_with_a_clear_message():
    result = manage("check", EDGE_COPY_BIAS="9")
    assert result.returncode != 0 and "EDGE_COPY_BIAS must be a number from 0 (off) to 8" in result.stderr
