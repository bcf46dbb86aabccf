"""A NUL anywhere in a form or query string is refused with a 400 that names the field: PostgreSQL raises
on a lookup with one, so without this check a page answered 500 (found by the fuzzer on PostgreSQL)."""

import pytest
from django.http import QueryDict

from edgeportal.jobs.models import Job
from edgeportal.nul_bytes import nul_field

pytestmark = pytest.mark.django_db


def test_nul_field_names_the_first_field_holding_a_nul():
    assert nul_field([QueryDict("a=1&b=2")]) is None
    assert nul_field([QueryDict("a=1"), QueryDict("b=x%00y")]) == "b"
    assert nul_field([QueryDict("a%00b=1")]) == "a\\0b"
    assert nul_field([QueryDict("a=1&a=%00")]) == "a"  # any of a repeated field's values


@pytest.mark.parametrize(
    ("method", "path", "data"),
    [
        ("post", "/jobs/new/", {"template": "\x00"}),
        ("post", "/jobs/new/", {"template": "notice", "var_line": "A\x00", "var_minutes": "5"}),
        ("get", "/jobs/new/", {"template": "\x00"}),
        ("get", "/latency/", {"template": "a\x00"}),
    ],
)
def test_a_nul_in_a_form_or_query_is_a_400_naming_the_field(manager_client, notice_template, method, path, data):
    response = getattr(manager_client, method)(path, data)
    assert response.status_code == 400
    assert "contains a NUL character" in response.content.decode()
    field = next(name for name, value in data.items() if "\x00" in value)
    assert f"Field {field!r}" in response.content.decode()
    assert not Job.objects.exists()


def test_a_json_body_is_left_to_the_api_which_refuses_it_with_its_own_message(api):
    response = api.post({"template": "\x00"})
    assert response.status_code == 400
    assert response.json()["error"]["field"] == "template"
