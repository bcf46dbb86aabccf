"""Fuzzing POST /api/jobs with the real view: whatever the body, the answer is a 202 or a 4xx JSON error."""

import json

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from edgeportal.jobs.api import ALLOWED_FIELDS
from tests.fuzz.strategies import FUZZ, JSON_TEXT, JSON_VALUE, TEXT

pytestmark = pytest.mark.django_db  # accepted jobs stay queued: no worker, no commit (no Redis enqueue)

FIELD_NAMES = st.one_of(st.sampled_from(sorted(ALLOWED_FIELDS)), JSON_TEXT)


@pytest.fixture
def templates(defect_template, notice_template):
    return [defect_template, notice_template]


def assert_answered(response) -> None:
    """A 202 with the job, or a 4xx with {"error": {"code", "message"}}; never a 5xx."""
    event(f"status {response.status_code}")  # --hypothesis-show-statistics shows how the answers spread
    assert response.status_code < 500, response.content[:500]
    body = response.json()
    if response.status_code == 202:
        assert isinstance(body["id"], int)
    else:
        assert 400 <= response.status_code < 500
        assert body["error"]["code"] and body["error"]["message"]


def post_json(api, body) -> None:
    assert_answered(api.post(None, raw=json.dumps(body)))


@FUZZ
@given(body=st.dictionaries(FIELD_NAMES, JSON_VALUE, max_size=6))
def test_any_json_object(api, templates, body):
    post_json(api, body)


@FUZZ
@given(raw=st.one_of(st.binary(max_size=400), st.text(max_size=400).map(str.encode), JSON_VALUE.map(json.dumps)))
def test_any_body(api, raw):
    assert_answered(api.post(None, raw=raw))


VALID = [
    {"prompt": "Line A stops at press 4."},
    {"template": "defect", "variables": {"camera": "C3", "defect": "a scratch"}},
    {"template": "notice", "variables": {"line": "A", "minutes": 5, "language": "Spanish"}},
]


@FUZZ
@given(
    request=st.sampled_from(VALID),
    field=st.sampled_from(["template", "variables", "prompt", "priority", "deadline_ms", "camera", "minutes", "line"]),
    value=st.one_of(JSON_VALUE, TEXT),
)
def test_any_value_in_one_field_of_a_valid_request(api, templates, request, field, value):
    body = json.loads(json.dumps(request))
    if field in ALLOWED_FIELDS:
        body[field] = value
    elif "variables" in body:
        body["variables"][field] = value
    post_json(api, body)


@FUZZ
@given(
    template=st.one_of(st.sampled_from(["defect", "notice"]), JSON_VALUE),
    variables=st.one_of(
        st.dictionaries(st.sampled_from(["camera", "defect", "line", "minutes", "language"]), JSON_VALUE, max_size=5),
        st.fixed_dictionaries({"line": st.sampled_from(["A", "B"]) | TEXT, "minutes": JSON_VALUE, "language": TEXT}),
        st.fixed_dictionaries({"camera": TEXT, "defect": TEXT}),
        JSON_VALUE,
    ),
    extra=st.fixed_dictionaries({}, optional={"priority": JSON_VALUE, "deadline_ms": JSON_VALUE}),
)
def test_any_values_in_the_template_fields(api, templates, template, variables, extra):
    post_json(api, {"template": template, "variables": variables, **extra})


@FUZZ
@given(
    prompt=st.one_of(JSON_TEXT, JSON_VALUE),
    extra=st.fixed_dictionaries({}, optional={"priority": JSON_VALUE, "deadline_ms": JSON_VALUE}),
)
def test_any_values_in_the_free_prompt_fields(api, prompt, extra):
    post_json(api, {"prompt": prompt, **extra})
