"""Every number people and machines send is parsed by the one strict parser (inference.integers): the API,
every form, template integer variables, the tuning settings and the YAML import refuse the same inputs, each
with a clear 4xx message naming the field, never a 500 or a number nobody meant."""

import json

import pytest
import yaml
from django.core.exceptions import ImproperlyConfigured

from edgeportal.jobs.models import Job
from edgeportal.lab.services import labrun_record
from edgeportal.lab.simulator import Comparison
from edgeportal.prompts.models import PromptTemplate
from edgeportal.prompts.yaml_io import ImportProblem, templates_export, templates_import
from edgeportal.settings import envint
from edgeportal.sources.models import Source
from edgeportal.tuning.models import SettingChange
from inference.settings import SETTINGS, SchedulerSettings, SettingError, env_int, parse_setting
from inference.store.queue import SettingsStore
from tests.conftest import make_template

# Text int() (or float-happy JSON) would take, though no sender means that whole number by it.
BAD_TEXT = ["²", "٣", "1_000", " 12 ", "1e3", "12.0", "9" * 40]
# The same in a JSON body, plus what JSON itself has: booleans, floats (5.0, 1e3) and huge integers.
BAD_JSON = [*BAD_TEXT, True, 5.0, 1e3, 10**30]


@pytest.fixture(autouse=True)
def _db(db):
    pass


@pytest.fixture
def notice():
    return make_template(
        slug="notice",
        title="Notice",
        body="Line {line} restarts in {minutes} minutes.",
        variables=[
            {"name": "line", "type": "choice", "choices": ["A", "B"]},
            {"name": "minutes", "type": "integer", "min": 1, "max": 6000},
        ],
    )


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


# --- the JSON API ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", BAD_JSON, ids=repr)
def test_the_api_refuses_a_deadline_that_is_not_a_plain_whole_number(api, raw):
    response = api.post({"prompt": "Line A stops.", "deadline_ms": raw})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("invalid", "deadline_ms")
    assert "deadline_ms must be a whole number from 1 to 300000" in error["message"]
    assert not Job.objects.exists()


@pytest.mark.parametrize("raw", BAD_JSON, ids=repr)
def test_the_api_refuses_a_template_integer_that_is_not_a_plain_whole_number(api, notice, raw):
    response = api.post({"template": "notice", "variables": {"line": "A", "minutes": raw}})
    assert response.status_code == 400
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("invalid_variables", "minutes")
    assert "Variable 'minutes' must be a whole number from 1 to 6000" in error["message"]


@pytest.mark.parametrize(("raw", "prompt_part"), [("12", "in 12 minutes"), (12, "in 12 minutes"), ("+7", "in 7 ")])
def test_plain_whole_numbers_still_pass(api, notice, raw, prompt_part):
    response = api.post({"template": "notice", "variables": {"line": "A", "minutes": raw}, "deadline_ms": "5000"})
    assert response.status_code == 202
    assert prompt_part in Job.objects.get().prompt


# --- forms ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", BAD_TEXT)
def test_the_job_form_refuses_such_numbers_as_form_errors(manager_client, notice, raw):
    response = manager_client.post(
        "/jobs/new/", {"template": "notice", "var_line": "A", "var_minutes": raw, "deadline_s": raw}
    )
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert "Enter a whole number (digits 0-9)." in errors["var_minutes"]
    if raw.strip() not in ("12", "12.0"):  # seconds a person typed: 12 and 12.0 are fine there
        assert errors["deadline_s"][0].startswith("Enter ")
    assert not Job.objects.exists()


@pytest.mark.parametrize("raw", BAD_TEXT)
def test_the_template_editor_refuses_them_for_max_new_tokens(admin_client, raw):
    data = {"slug": "n", "title": "N", "body": "Hello.", "language": "en", "max_new_tokens": raw}
    response = admin_client.post("/templates/new/", data)
    assert response.status_code == 400
    assert response.context["form"].errors["max_new_tokens"] == ["Enter a whole number (digits 0-9)."]
    assert not PromptTemplate.objects.exists()


@pytest.mark.parametrize("bound", [True, 1.5, 1e3, "5", 10**30])
def test_the_template_editor_refuses_them_as_declared_bounds(admin_client, bound):
    variables = json.dumps([{"name": "minutes", "type": "integer", "min": bound}])
    data = {"slug": "n", "title": "N", "body": "In {minutes}.", "language": "en", "max_new_tokens": "8"}
    response = admin_client.post("/templates/new/", {**data, "variables": variables})
    assert response.status_code == 400
    assert "Variable 'minutes': min must be a whole number" in response.context["form"].errors["variables"][0]


@pytest.mark.parametrize("raw", BAD_TEXT)
def test_the_latency_filters_refuse_them(manager_client, raw):
    response = manager_client.get("/latency/", {"batch_size": raw})
    assert response.status_code == 400
    assert response.context["form"].errors["batch_size"]


@pytest.mark.parametrize("raw", BAD_TEXT)
def test_the_lab_target_refuses_them(client, outsider, raw):
    run = labrun_record(
        model_name="m", dtype="float32", parameters={}, comparison=Comparison(1, 1, 1, 1), results=[],
        target_p95_ms=250.0,
    )  # fmt: skip
    client.force_login(outsider)
    assert 'value="250"' in client.get(f"/lab/{run.pk}/").content.decode()  # a stored float shows as its ms
    response = client.get(f"/lab/{run.pk}/", {"target_p95_ms": raw})
    assert response.status_code == 400
    assert response.context["form"].errors["target_p95_ms"] == ["Enter a whole number (digits 0-9)."]


@pytest.mark.parametrize("raw", BAD_TEXT)
def test_the_tuning_page_refuses_them(admin_client, raw):
    values = {name: setting.default for name, setting in SETTINGS.items()}
    response = admin_client.post("/tuning/", {**values, "queue_limit": raw})
    assert response.status_code == 400
    assert "Enter a whole number. Must be between 1 and 100000 jobs." in response.content.decode()
    assert not SettingChange.objects.exists()


@pytest.mark.parametrize("raw", BAD_TEXT)
def test_the_source_admin_refuses_them(admin_client, raw):
    source = Source.objects.create(name="plc-1", token_hash="x" * 64)
    data = {"name": "plc-1", "kind": "plc", "is_active": "on", "rate_limit_per_minute": raw, "deadline_ms": raw}
    response = admin_client.post(f"/admin/sources/source/{source.pk}/change/", data)
    assert response.status_code == 200  # the admin shows its form again, with the errors
    errors = response.context["adminform"].form.errors
    assert set(errors) == {"rate_limit_per_minute", "deadline_ms"}
    source.refresh_from_db()
    assert source.rate_limit_per_minute is None and source.deadline_ms is None


# --- settings: tuning, environment ------------------------------------------------------------------------


@pytest.mark.parametrize("raw", BAD_JSON, ids=repr)
def test_scheduler_settings_refuse_them(raw):
    with pytest.raises(SettingError, match="window_ms: must be a whole number from 0 to 10000"):
        parse_setting("window_ms", raw)


@pytest.mark.parametrize("raw", ["²", "٣", "1_000", "1e3", "12.0", "9" * 40])
def test_the_environment_refuses_them(raw):
    with pytest.raises(SettingError, match="EDGE_RECLAIM_IDLE_MS: must be a whole number"):
        env_int("EDGE_RECLAIM_IDLE_MS", 60_000, low=1_000, high=3_600_000, environ={"EDGE_RECLAIM_IDLE_MS": raw})
    with pytest.raises(SettingError, match="EDGE_WINDOW_MS: must be a whole number"):
        SchedulerSettings.from_env({"EDGE_WINDOW_MS": raw})


def test_the_environment_ignores_the_white_space_around_a_value(monkeypatch):
    assert env_int("N", 1, low=0, high=100, environ={"N": " 12\n"}) == 12
    monkeypatch.setenv("EDGE_TEST_NUMBER", " 7 ")
    assert envint("EDGE_TEST_NUMBER", 1) == 7
    monkeypatch.setenv("EDGE_TEST_NUMBER", "٣")
    with pytest.raises(ImproperlyConfigured, match="EDGE_TEST_NUMBER must be a whole number of at least 0"):
        envint("EDGE_TEST_NUMBER", 1)


def test_a_stored_override_in_such_a_form_is_ignored(queue):
    store = SettingsStore(queue, SchedulerSettings(max_batch_size=8))
    queue.redis.hset(store.key, "max_batch_size", "1_6")
    assert store.current().max_batch_size == 8


# --- the YAML import --------------------------------------------------------------------------------------


def yaml_with(max_new_tokens: str, minimum: str = "1") -> str:
    return (
        "templates:\n"
        "- slug: n\n  title: N\n  body: In {minutes}.\n"
        f"  max_new_tokens: {max_new_tokens}\n"
        f"  variables: [{{name: minutes, type: integer, min: {minimum}}}]\n"
    )


@pytest.mark.parametrize("raw", ['"²"', "٣", "1_000", "0x10", "1:30", "1e3", "5.0", "yes", "' 12 '", "9" * 40])
def test_the_yaml_import_refuses_them_and_imports_nothing(raw):
    with pytest.raises(ImportProblem, match="template 'n' max_new_tokens: must be a whole number"):
        templates_import(yaml_with(raw))
    with pytest.raises(ImportProblem, match="template 'n' variables: Variable 'minutes': min must be a whole"):
        templates_import(yaml_with("8", minimum=raw))
    assert not PromptTemplate.objects.exists()


def test_the_yaml_import_takes_plain_decimal_numbers(notice):
    assert templates_import(yaml_with("012", minimum="-5")) == ["created n (version 1)"]
    assert (PromptTemplate.objects.get(slug="n").max_new_tokens, PromptTemplate.objects.get(slug="n").variables) == (
        12,
        [{"name": "minutes", "type": "integer", "min": -5}],
    )  # 012 is twelve, not YAML 1.1's octal ten


def test_the_yaml_import_refuses_aliases_which_could_expand_to_gigabytes():
    bomb = 'a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n'
    with pytest.raises(ImportProblem, match="aliases"):
        templates_import(bomb + "templates:\n- {slug: n, title: N, body: Hi., system_prompt: *b}\n")


def test_what_the_export_writes_the_strict_import_reads_back(notice):
    text = templates_export()
    assert yaml.safe_load(text)["templates"][0]["variables"] == notice.variables
    assert templates_import(text) == ["unchanged notice (version 1)"]
