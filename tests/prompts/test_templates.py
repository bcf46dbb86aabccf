import pytest
import yaml
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from edgeportal.jobs.models import Job
from edgeportal.prompts.models import PromptTemplate
from edgeportal.prompts.services import template_rollback, template_save, version_diff
from edgeportal.prompts.yaml_io import ImportProblem, templates_export, templates_import
from edgeportal.sources.models import Source
from tests.conftest import make_template


@pytest.fixture(autouse=True)
def _db(db):
    pass


@pytest.fixture
def notice(notice_template):
    return notice_template


def test_saving_keeps_every_version_and_only_content_changes_make_one(admin_user):
    template = make_template(slug="t", title="T", body="Say {x}.")
    assert [v.version for v in template.versions.all()] == [1]
    template.title = "Renamed"
    assert template_save(template=template) is None
    template.body = "Say {x} twice."
    v2 = template_save(template=template, user=admin_user)
    assert (v2.version, v2.body, v2.created_by) == (2, "Say {x} twice.", admin_user)
    assert template.versions.get(version=1).body == "Say {x}."  # history is never rewritten


def test_rollback_makes_an_old_version_current_as_a_new_version():
    template = make_template(slug="t", title="T", body="Say {x}.")
    template.body = "Shout {x}."
    template_save(template=template)
    v3 = template_rollback(template=template, version=1)
    template.refresh_from_db()
    assert (v3.version, template.version, template.body) == (3, 3, "Say {x}.")


def test_a_diff_shows_what_changed_between_versions():
    template = make_template(slug="t", title="T", body="Say {x}.")
    template.body = "Shout {x}."
    template_save(template=template)
    diff = version_diff(template.versions.get(version=1), template.versions.get(version=2))
    assert "-body: Say {x}." in diff and "+body: Shout {x}." in diff


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ([{"name": "y"}], "declared but the body never uses {y}"),
        ([{"name": "x", "type": "date"}], "use one of text, choice, integer"),
        ([{"name": "x", "type": "choice"}], "needs a non-empty list"),
        ([{"name": "x", "max_length": "long"}], "max_length must be a whole number"),
        ([{"name": "x", "colour": "red"}], "unknown keys: colour"),
        ({"x": "text"}, "must be a list"),
    ],
)
def test_bad_variable_declarations_are_refused_with_the_variable_named(variables, message):
    with pytest.raises(ValidationError, match=message):
        template_save(template=PromptTemplate(slug="t", title="T", body="Say {x}.", variables=variables))


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"line": "C", "minutes": 5, "language": "English"}, "line", "must be one of: A, B"),
        ({"line": "A", "minutes": 90, "language": "English"}, "minutes", "from 1 to 60, got 90"),
        ({"line": "A", "minutes": "soon", "language": "English"}, "minutes", "whole number"),
        ({"line": "A", "minutes": 5, "language": "Portuguese!"}, "language", "longer than 10"),
    ],
)
def test_values_are_checked_against_their_declared_types(api, notice, values, field, message):
    response = api.post({"template": "notice", "variables": values})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["field"] == field and message in error["message"]


def test_typed_values_render_into_the_prompt(api, notice):
    response = api.post({"template": "notice", "variables": {"line": "B", "minutes": "５", "language": "Spanish"}})
    assert response.status_code == 202
    assert Job.objects.get().prompt == "Line B restarts in 5 minutes. Write a notice in Spanish."


def test_the_form_offers_choices_as_a_select_and_integers_as_numbers(manager_client, notice):
    form = manager_client.get("/jobs/new/?template=notice").context["form"]
    assert form.fields["var_line"].choices[1:] == [("A", "A"), ("B", "B")]
    assert form.fields["var_minutes"].max_value == 60
    response = manager_client.post(
        "/jobs/new/", {"template": "notice", "var_line": "A", "var_minutes": "99", "var_language": "en"}
    )
    assert response.status_code == 400 and "var_minutes" in response.context["form"].errors


def test_machines_discover_the_templates_their_source_may_use(api, notice):
    only_plc = make_template(slug="plc-only", title="PLC only", body="Check {sensor}.")
    only_plc.sources.set([Source.objects.create(name="plc-9", token_hash="x" * 64)])
    body = api.get_path("/api/templates").json()
    assert [t["slug"] for t in body["templates"]] == ["notice"]
    [listed] = body["templates"]
    assert listed["version"] == 1
    assert listed["variables"] == [
        {"name": "line", "type": "choice", "choices": ["A", "B"]},
        {"name": "minutes", "type": "integer", "min": 1, "max": 60},
        {"name": "language", "type": "text", "max_length": 10},
    ]
    assert body["templates"][0]["variables"][2]["max_length"] == 10
    response = api.post({"template": "plc-only", "variables": {"sensor": "S1"}})
    assert response.status_code == 403 and response.json()["error"]["code"] == "template_not_allowed"


def test_managers_see_only_templates_offered_to_them(client, manager, admin_user, notice):
    make_template(slug="internal", title="Internal", body="Audit {x}.", managers_may_use=False)
    client.force_login(manager)
    assert [t.slug for t in client.get("/jobs/new/").context["templates"]] == ["notice"]
    assert client.get("/jobs/new/?template=internal").status_code == 400
    client.force_login(admin_user)
    assert {t.slug for t in client.get("/jobs/new/").context["templates"]} == {"notice", "internal"}


def test_yaml_export_and_import_round_trip(notice):
    text = templates_export()
    data = yaml.safe_load(text)
    assert data["templates"][0]["slug"] == "notice"
    data["templates"][0]["body"] += " Be brief."
    data["templates"][0]["description"] = "For the line screens."
    data["templates"][0]["variables"][0].update(label="Line", help="The line that stops.", example="A")
    assert templates_import(yaml.safe_dump(data)) == ["updated notice to version 2"]
    assert templates_import(yaml.safe_dump(data)) == ["unchanged notice (version 2)"]
    data["templates"][0].update(semantic_cache=0.95, title="Line notice")  # saved, but no new version
    assert templates_import(yaml.safe_dump(data)) == [
        "updated notice: title, semantic_cache (version 2 kept: what the model sees is unchanged)"
    ]
    notice.refresh_from_db()
    assert (notice.semantic_cache, notice.title, notice.version) == (0.95, "Line notice", 2)
    assert notice.description == "For the line screens." and notice.variable_spec()[0].example == "A"
    assert yaml.safe_load(templates_export())["templates"][0]["description"] == "For the line screens."


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.update(max_new_tokens=5000), "template 'second' max_new_tokens: Must be between 1 and 1024"),
        (lambda t: t.update(body="Hi {a.b}"), "template 'second' body"),
        (lambda t: t.update(sources=["nope"]), "template 'second' sources: no such source(s): nope"),
        (lambda t: t.update(sources=[[]]), "template 'second' sources: must be a list of source names"),  # fuzzer
        (lambda t: t.update(sources={"a": 1}), "template 'second' sources: must be a list of source names"),
        (lambda t: t.pop("title"), "template 'second' title: is required"),
        (lambda t: t.update(colour="red"), "unknown field(s) colour"),
        (lambda t: t.update(description="x" * 501), "template 'second' description"),
        (lambda t: t.update(description=7), "template 'second' description: must be text"),
        (lambda t: t.update(body="Hi {x}", variables=[{"name": "x", "help": 5}]), "help must be text"),
        # Found by the fuzzer on PostgreSQL: a "\0" escape in a slug or name broke the lookup (500).
        (lambda t: t.update(slug="sec\x00ond"), "NUL character"),
        (lambda t: t.update(sources=["line\x00a"]), "NUL character"),
    ],
)
def test_an_import_with_any_error_changes_nothing_and_names_the_fault(notice, change, message):
    first = {"slug": "notice", "title": "Notice", "body": "Changed {line} {minutes} {language}"}
    second = {"slug": "second", "title": "Second", "body": "Hello {name}", "max_new_tokens": 16}
    change(second)
    with pytest.raises(ImportProblem, match=message.replace("(", r"\(").replace(")", r"\)")):
        templates_import(yaml.safe_dump({"templates": [first, second]}))
    notice.refresh_from_db()
    assert notice.version == 1 and not PromptTemplate.objects.filter(slug="second").exists()


def test_an_empty_variables_entry_imports_as_no_variables():
    # Found by the fuzzer: "variables:" with nothing after it reached the database as NULL (IntegrityError).
    assert templates_import("templates:\n- {slug: hi, title: Hi, body: Hello., variables: }\n") == [
        "created hi (version 1)"
    ]
    assert PromptTemplate.objects.get(slug="hi").variables == []


def test_the_templates_command_exports_and_imports_files(tmp_path, notice):
    path = tmp_path / "templates.yaml"
    call_command("templates", "export", str(path))
    assert "slug: notice" in path.read_text()
    path.write_text("templates: [oops")
    with pytest.raises(CommandError, match="nothing imported: not valid YAML"):
        call_command("templates", "import", str(path))
    with pytest.raises(CommandError, match="cannot read"):
        call_command("templates", "import", str(tmp_path / "missing.yaml"))
    path.write_bytes(b"templates: \x80")  # found by the fuzzer: a traceback, not a message
    with pytest.raises(CommandError, match=r"cannot read .*: not UTF-8 text"):
        call_command("templates", "import", str(path))


def test_admins_see_versions_with_diffs_and_roll_back(client, admin_user, manager, notice):
    notice.body = "Line {line} restarts in {minutes} min. Notice in {language}."
    template_save(template=notice)
    client.force_login(manager)
    assert client.get("/templates/notice/versions/").status_code == 403
    client.force_login(admin_user)
    html = client.get("/templates/notice/versions/").content.decode()
    assert "+body: Line {line} restarts in {minutes} min." in html
    response = client.post("/templates/notice/versions/1/rollback/")
    assert response.status_code == 302
    notice.refresh_from_db()
    assert notice.version == 3 and notice.body.startswith("Line {line} restarts in {minutes} minutes.")
    assert client.post("/templates/notice/versions/9/rollback/").status_code == 404


def test_the_template_list_shows_the_cache_hit_rate(client, admin_user, notice):
    Job.objects.create(prompt="p", max_new_tokens=4, template=notice, cache_hit=True)
    Job.objects.create(prompt="p", max_new_tokens=4, template=notice)
    client.force_login(admin_user)
    html = client.get("/templates/").content.decode()
    assert 'data-testid="hit-rate-notice">50 %' in html


def test_choices_match_however_the_value_is_spelled(api):
    make_template(slug="pick", title="Pick", body="Use line {line}.",
                  variables=[{"name": "line", "type": "choice", "choices": ["Line 2", "Line 3"]}])  # fmt: skip
    response = api.post({"template": "pick", "variables": {"line": "Line  ２"}})
    assert response.status_code == 202
    assert Job.objects.get().prompt == "Use line Line 2."
