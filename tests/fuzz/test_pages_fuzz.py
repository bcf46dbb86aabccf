"""Fuzzing every page that takes input, through the real views: the answer is the page, a redirect after a
success, or the form with its errors (4xx); never a server error."""

import json

import pytest
from django.test import Client
from hypothesis import event, example, given
from hypothesis import strategies as st

from edgeportal.lab.services import labrun_record
from edgeportal.lab.simulator import Comparison
from inference.settings import SETTINGS
from tests.fuzz.strategies import FUZZ_PAGES, NUMBERISH, TEXT

pytestmark = pytest.mark.django_db

FORM_VALUE = st.one_of(TEXT, NUMBERISH, st.lists(TEXT, max_size=3))  # a list: the same name sent several times


def assert_page(response) -> None:
    event(f"status {response.status_code}")  # --hypothesis-show-statistics shows how the answers spread
    assert response.status_code < 500, response.content[:500]
    assert response.status_code in (200, 302, 400, 403, 404, 429), response.status_code


@pytest.fixture
def admin(admin_user) -> Client:
    client = Client()
    client.force_login(admin_user)
    return client


@pytest.fixture
def manager_page(manager) -> Client:
    client = Client()
    client.force_login(manager)
    return client


@pytest.fixture
def notice(defect_template, notice_template):
    return notice_template


def replaced(base: dict, changes: dict) -> dict:
    return {**base, **changes}


def some_of(base: dict, extra_names=()) -> st.SearchStrategy:
    """A valid form with any of its fields (and perhaps some unknown ones) replaced by anything."""
    names = st.sampled_from([*base, *extra_names])
    return st.dictionaries(names, FORM_VALUE, max_size=len(base)).map(lambda changes: replaced(base, changes))


JOB_FORMS = st.one_of(
    some_of({"prompt": "Line A stops at press 4.", "priority": "normal", "deadline_s": ""}, ["template"]),
    some_of({"template": "defect", "var_camera": "C3", "var_defect": "a dent", "priority": "", "deadline_s": "5"}),
    some_of({"template": "notice", "var_line": "A", "var_minutes": "5", "var_language": "English", "deadline_s": ""}),
)


@FUZZ_PAGES
@given(data=JOB_FORMS)
@example(data={"prompt": "Line A stops.", "template": "\x00"})  # a 500 on PostgreSQL, found in CI
def test_the_job_submit_form(manager_page, notice, data):
    assert_page(manager_page.post("/jobs/new/", data))
    assert_page(manager_page.get("/jobs/new/", {"template": data.get("template", "")}))


@FUZZ_PAGES
@given(data=JOB_FORMS)
def test_the_submit_forms_live_preview(manager_page, notice, data):
    assert_page(manager_page.post("/jobs/new/preview/", data))


EDITOR = {
    "slug": "fuzzed",
    "title": "Fuzzed",
    "body": "Line {line} in {minutes}.",
    "system_prompt": "",
    "language": "en",
    "max_new_tokens": "32",
    "variables": json.dumps([{"name": "minutes", "type": "integer", "min": 1, "max": 60}]),
    "sample": json.dumps({"line": "A", "minutes": 5}),
    "managers_may_use": "on",
}
JSON_TEXTS = st.one_of(
    TEXT,
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | TEXT,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
        max_leaves=8,
    ).map(json.dumps),
    st.builds(
        lambda **item: json.dumps([item]),
        name=st.sampled_from(["line", "minutes"]) | TEXT,
        type=st.sampled_from(["text", "choice", "integer"]) | TEXT,
        min=st.integers() | st.floats() | TEXT,
        max_length=st.integers() | NUMBERISH,
        choices=st.lists(TEXT, max_size=3),
    ),
)


@FUZZ_PAGES
@given(
    changes=st.dictionaries(st.sampled_from(list(EDITOR)), st.one_of(FORM_VALUE, JSON_TEXTS), max_size=4),
    page=st.sampled_from(["/templates/new/", "/templates/notice/edit/", "/templates/preview/"]),
)
def test_the_template_editor(admin, notice, changes, page):
    assert_page(admin.post(page, {**EDITOR, **changes}))


@FUZZ_PAGES
@given(sample=st.one_of(JSON_TEXTS, FORM_VALUE), slug=st.sampled_from(["notice", "defect"]))
def test_try_it(admin, notice, sample, slug):
    assert_page(admin.post(f"/templates/{slug}/try/", {"sample": sample}))


TUNING = {name: str(setting.default) for name, setting in SETTINGS.items()}


@FUZZ_PAGES
@given(changes=some_of(TUNING))
def test_the_tuning_page(admin, changes):
    assert_page(admin.post("/tuning/", changes))


HISTORY_FILTERS = ["period", "date_from", "date_to", "template", "source", "lane", "status", "batch_size", "worker"]


@FUZZ_PAGES
@given(
    query=st.dictionaries(st.sampled_from([*HISTORY_FILTERS, "cache_hit", "sort", "page"]) | TEXT, FORM_VALUE),
    page=st.sampled_from(["/latency/", "/latency/export.csv", "/latency/batches/"]),
    htmx=st.booleans(),
)
def test_the_latency_history_filters(manager_page, notice, query, page, htmx):
    response = manager_page.get(page, query, headers={"HX-Request": "true"} if htmx else {})
    assert_page(response)
    if page.endswith(".csv") and response.status_code == 200:
        b"".join(response.streaming_content)  # the export is written while it streams


@pytest.fixture
def lab_run():
    return labrun_record(
        model_name="m", dtype="float32", parameters={}, comparison=Comparison(8, 16000, 2000, 3400), results=[],
        target_p95_ms=4000,
    )  # fmt: skip


@FUZZ_PAGES
@given(target=FORM_VALUE)
def test_the_lab_target(manager_page, lab_run, target):
    assert_page(manager_page.get(f"/lab/{lab_run.pk}/", {"target_p95_ms": target}))


SOURCE = {"name": "plc-fuzz", "kind": "plc", "is_active": "on", "rate_limit_per_minute": "", "deadline_ms": ""}


@FUZZ_PAGES
@given(changes=some_of(SOURCE, ["allow_free_prompts"]))
def test_the_source_admin(admin, changes):
    assert_page(admin.post("/admin/sources/source/add/", changes))
