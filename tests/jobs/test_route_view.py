"""The free-prompt form's template suggestion: an htmx fragment naming the closest template, with a link to it."""

import pytest

from tests.conftest import make_template

ROUTE = "/jobs/new/route/"
DENT = "Camera C7 saw a dent on the door panel, describe the defect for QA"


@pytest.fixture
def qa_template(db):
    return make_template(
        slug="defect-qa", title="Defect description for QA", description="A camera found a defect: describe it.",
        body="Camera {camera} detected {defect}. Write a short defect description for QA.",
    )  # fmt: skip


def test_a_typed_prompt_gets_the_closest_template_with_a_link_that_picks_its_card(manager_client, qa_template):
    response = manager_client.post(ROUTE, {"prompt": DENT}, headers={"HX-Request": "true"})
    html = response.content.decode()
    assert response.status_code == 200 and html.count('data-testid="route-suggestion"') == 1
    assert "This looks like <strong>Defect description for QA</strong>." in html
    assert 'href="/jobs/new/?template=defect-qa"' in html and 'data-template="defect-qa"' in html
    assert [s.template for s in response.context["suggestions"]] == [qa_template]


@pytest.mark.parametrize(
    "data", [{}, {"prompt": ""}, {"prompt": "defect"}, {"prompt": "Write a poem about the summer holidays"}]
)
def test_a_missing_short_or_unrelated_prompt_gets_an_empty_fragment(manager_client, qa_template, data):
    response = manager_client.post(ROUTE, data)
    assert response.status_code == 200 and 'data-testid="route-suggestion"' not in response.content.decode()


def test_a_prompt_over_the_forms_limit_is_refused_without_routing_it(manager_client, qa_template, settings):
    settings.EDGE_MAX_PROMPT_CHARS = 50
    response = manager_client.post(ROUTE, {"prompt": DENT + " and more" * 10})
    assert response.status_code == 400 and 'data-testid="route-suggestion"' not in response.content.decode()


@pytest.mark.parametrize(
    "body",
    [
        b"prompt=%00%00%00%00%00%00%00%00%00",
        b"prompt=%FF%FE+defect+description+for+QA",
        b"prompt=%7Bcamera%7D+%7Bdefect%7D+%7Bcamera%7D",
        b"prompt=a&prompt=b&%ZZ",
    ],
)
def test_odd_text_never_breaks_the_fragment(manager_client, qa_template, body):
    response = manager_client.generic("POST", ROUTE, body, content_type="application/x-www-form-urlencoded")
    assert response.status_code < 500


def test_a_template_title_is_escaped(manager_client):
    make_template(slug="xss", title="<script>alert(1)</script> defect report", body="Describe the defect: {what}")
    html = manager_client.post(ROUTE, {"prompt": "Describe the defect: a dent, for the defect report"}).content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; defect report" in html and "<script>" not in html


def test_a_template_not_offered_to_managers_is_suggested_to_admins_only(client, manager, admin_user):
    make_template(slug="hidden", title="Defect description for QA", body="Describe the defect {d} for QA.",
                  managers_may_use=False)  # fmt: skip
    client.force_login(manager)
    assert client.post(ROUTE, {"prompt": DENT}).context["suggestions"] == []
    client.force_login(admin_user)
    assert [s.template.slug for s in client.post(ROUTE, {"prompt": DENT}).context["suggestions"]] == ["hidden"]


def test_the_suggestion_is_for_managers_who_may_type_free_prompts_and_only_by_post(
    client, manager, outsider, manager_client, qa_template
):
    assert manager_client.get(ROUTE, {"prompt": DENT}).status_code == 405
    client.logout()
    assert client.post(ROUTE, {"prompt": DENT}).status_code == 302  # to the login page
    client.force_login(outsider)
    assert client.post(ROUTE, {"prompt": DENT}).status_code == 403
    manager.groups.first().permissions.clear()
    client.force_login(manager)
    assert client.post(ROUTE, {"prompt": DENT}).status_code == 403


def test_the_free_prompt_field_asks_for_a_suggestion_as_it_is_typed_and_a_template_form_does_not(
    manager_client, qa_template
):
    html = manager_client.get("/jobs/new/?template=").content.decode()
    assert 'hx-post="/jobs/new/route/"' in html and 'hx-trigger="input changed delay:400ms from:#id_prompt"' in html
    assert 'id="submit-route"' in html and 'aria-live="polite"' in html
    assert 'hx-post="/jobs/new/route/"' not in manager_client.get("/jobs/new/?template=defect-qa").content.decode()
