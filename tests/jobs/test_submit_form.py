"""The manager-first submit form: template cards, fields with help and examples, a live preview, priorities
explained, the deadline in seconds, and refusals that say what to do."""

import pytest

from edgeportal.core.queueing import get_settings_store
from edgeportal.jobs.models import Job
from edgeportal.jobs.previews import submit_preview
from tests.conftest import make_template

ZH = {"HTTP_ACCEPT_LANGUAGE": "zh-CN,zh;q=0.9"}
VARIABLES = [
    {"name": "line", "type": "choice", "choices": ["A", "B"]},
    {"name": "minutes", "type": "integer", "min": 1, "max": 60, "help": "How long it stops."},
    {"name": "reason", "max_length": 80, "label": "Why it stops", "example": "a jammed feeder"},
]


@pytest.fixture
def stop_template(db):
    return make_template(
        slug="stop", title="Line stop notice", description="Tell the line a stop is coming.", language="zh",
        body="Line {line} stops for {minutes} minutes: {reason}.", variables=VARIABLES, max_new_tokens=24,
    )  # fmt: skip


def test_templates_are_cards_with_what_they_are_for_and_what_they_produce_filtered_by_role(
    manager_client, stop_template
):
    make_template(slug="hidden", title="Admins only", body="Secret {x}.", managers_may_use=False)
    html = manager_client.get("/jobs/new/").content.decode()
    assert html.count('data-testid="template-card"') == 2  # the manager's one template and the free prompt
    assert "Line stop notice" in html and "Tell the line a stop is coming." in html and "Admins only" not in html
    assert "Produces one text in zh, up to 24 tokens." in html
    assert '<input type="radio" name="template" value="stop"' in html


def test_a_templates_variables_are_labelled_fields_with_their_type_help_and_example(manager_client, stop_template):
    html = manager_client.get("/jobs/new/?template=stop").content.decode()
    assert '<label for="id_var_line">Line</label>' in html and '<option value="B">B</option>' in html
    assert 'type="number" name="var_minutes"' in html and 'min="1"' in html and 'max="60"' in html
    assert "How long it stops." in html  # the template's own help wins over the type's
    assert '<label for="id_var_reason">Why it stops</label>' in html and 'maxlength="80"' in html
    assert 'placeholder="e.g. a jammed feeder"' in html and "Up to 80 characters." in html
    assert 'aria-describedby="id_var_reason_helptext"' in html and 'id="id_var_reason_helptext"' in html


def test_priority_is_three_explained_choices_and_the_deadline_shows_its_default_in_seconds(
    manager_client, stop_template
):
    html = manager_client.get("/jobs/new/?template=stop").content.decode()
    assert html.count('type="radio" name="priority"') == 3 and 'value="normal" id="id_priority_1" checked' in html
    assert "Safety and line stops: goes first." in html and "Reports and summaries that can wait." in html
    assert "Empty: 10 s, the node&#x27;s default (30 s for a long prompt)." in html
    stop_template.deadline_ms = 4500
    stop_template.save()
    assert "Empty: 4.5 s, the template&#x27;s." in manager_client.get("/jobs/new/?template=stop").content.decode()


def test_the_deadline_in_seconds_becomes_the_jobs_deadline(manager_client, stop_template):
    data = {"template": "stop", "var_line": "A", "var_minutes": "5", "var_reason": "a jam", "deadline_s": "2.5"}
    assert manager_client.post("/jobs/new/", data).status_code == 302
    job = Job.objects.get()
    assert (job.deadline_at - job.created_at).total_seconds() == pytest.approx(2.5, abs=0.05)


@pytest.mark.parametrize("bad", ["1e3", "٣", "0", "-1", "2.5555", "1,5", "99999"])
def test_a_deadline_that_is_not_plain_seconds_in_range_is_a_form_error(manager_client, stop_template, bad):
    data = {"template": "stop", "var_line": "A", "var_minutes": "5", "var_reason": "a jam", "deadline_s": bad}
    response = manager_client.post("/jobs/new/", data)
    assert response.status_code == 400 and response.context["form"].errors["deadline_s"]
    assert not Job.objects.exists()


def test_the_preview_shows_the_prompt_its_tokens_and_what_is_still_missing(manager_client, stop_template):
    response = manager_client.post("/jobs/new/preview/", {"template": "stop", "var_line": "B", "var_minutes": "7"})
    html = response.content.decode()
    assert response.status_code == 200 and html.startswith('<section id="submit-preview"')
    assert "Line B stops for 7 minutes: {reason}." in html and "Still to fill in: reason" in html
    assert response.context["preview"].tokens > 0 and 'data-testid="preview-tokens"' in html


def test_the_preview_says_what_is_wrong_with_a_value_and_escapes_what_was_typed(manager_client, stop_template):
    out_of_range = manager_client.post("/jobs/new/preview/", {"template": "stop", "var_minutes": "90"})
    assert out_of_range.context["preview"].problem == "Minutes: Ensure this value is less than or equal to 60."
    chinese = manager_client.post("/jobs/new/preview/", {"template": "stop", "var_minutes": "90"}, **ZH)
    assert "60" in chinese.context["preview"].problem and "Ensure" not in chinese.context["preview"].problem
    html = manager_client.post("/jobs/new/preview/", {"template": "", "prompt": "<b>hi</b>"}).content.decode()
    assert "&lt;b&gt;hi&lt;/b&gt;" in html and "<b>hi</b>" not in html


def test_the_preview_is_for_managers_and_only_by_post(client, outsider, manager_client, stop_template):
    assert manager_client.get("/jobs/new/preview/").status_code == 405
    client.force_login(outsider)
    assert client.post("/jobs/new/preview/", {"template": "stop"}).status_code == 403


def test_the_preview_normalises_as_the_entry_does(stop_template):
    preview = submit_preview(template=stop_template, values={"line": "A", "minutes": "５", "reason": "ｆｕｌｌ"})
    assert preview.text == "Line A stops for 5 minutes: full." and preview.missing == ()


@pytest.mark.django_db(transaction=True)
def test_a_busy_node_says_so_at_the_top_with_when_to_retry_in_the_managers_language(manager_client, queue):
    make_template(slug="note", title="Note", body="Note {text}.")
    get_settings_store().update(queue_limit=1, source_share_pct=100)
    queue.redis.hset(queue.stats, mapping={"batch_ms:short": 2_500, "batch_dev_ms:short": 0})
    assert manager_client.post("/jobs/new/", {"template": "note", "var_text": "one"}).status_code == 302
    response = manager_client.post("/jobs/new/", {"template": "note", "var_text": "two"}, **ZH)
    assert response.status_code == 429
    [message] = response.context["form"].non_field_errors()
    assert message.startswith("节点繁忙：请在 3 秒后重试。") and "队列已满" in message
    assert 'role="alert"' in response.content.decode()
