import pytest

from edgeportal.lab.services import labrun_record
from edgeportal.lab.simulator import Comparison, JobTiming, window_summarise


@pytest.fixture(autouse=True)
def _db(db):
    pass


def result(window_ms, *, p95_ms, jobs_per_s):
    """A window whose p95 and throughput are about the given ones: one job per batch, evenly spaced."""
    gap = 1000 / jobs_per_s
    timings = [JobTiming(i, i * gap - 50, i * gap, i * gap, i * gap + p95_ms, i, 1) for i in range(20)]
    return window_summarise(window_ms, timings)


@pytest.fixture
def lab_run():
    return labrun_record(
        model_name="SmolLM2-135M-Instruct",
        dtype="float32",
        parameters={"windows": [0, 60, 250], "rate_per_s": 0.6, "jobs": 20, "jitter_ms": [20, 200], "seed": 0},
        comparison=Comparison(jobs=8, sequential_ms=16000, single_mean_ms=2000, batch_ms=3400),
        results=[
            result(0, p95_ms=3000, jobs_per_s=0.5),
            result(60, p95_ms=3500, jobs_per_s=0.8),
            result(250, p95_ms=5200, jobs_per_s=1.1),
        ],
        target_p95_ms=4000,
        notes="<script>alert(1)</script>",
    )


def test_anonymous_users_are_sent_to_the_login_page(client, lab_run):
    for url in ("/lab/", f"/lab/{lab_run.pk}/"):
        response = client.get(url)
        assert response.status_code == 302 and "login/?next=" in response["Location"]


def test_any_logged_in_user_sees_the_runs_and_the_nav_links_to_them(client, outsider, lab_run):
    client.force_login(outsider)
    response = client.get("/lab/")
    html = response.content.decode()
    assert response.status_code == 200
    assert f'href="/lab/{lab_run.pk}/"' in html and "SmolLM2-135M-Instruct" in html
    assert '<a href="/lab/">Lab</a>' in html
    assert "4.71x" in html  # 16000 ms one by one vs 3400 ms as one batch


def test_the_run_page_recommends_the_window_for_the_runs_own_target(client, outsider, lab_run):
    client.force_login(outsider)
    response = client.get(f"/lab/{lab_run.pk}/")
    assert response.status_code == 200
    assert response.context["recommended"].window_ms == 60
    html = response.content.decode()
    assert "Recommended window for p95 ≤ 4000 ms: <strong>60 ms</strong>" in html
    assert 'value="4000.0"' in html or 'value="4000"' in html
    assert html.count('<tr class="recommended">') == 1
    assert '<svg class="lab-chart"' in html and html.count('<circle class="latency"') == 3
    assert 'class="target"' in html


def test_a_typed_target_changes_the_recommendation(client, outsider, lab_run):
    client.force_login(outsider)
    response = client.get(f"/lab/{lab_run.pk}/", {"target_p95_ms": "6000"})
    assert response.context["recommended"].window_ms == 250
    assert "<strong>250 ms</strong>" in response.content.decode()


def test_a_target_no_window_meets_says_so(client, outsider, lab_run):
    client.force_login(outsider)
    response = client.get(f"/lab/{lab_run.pk}/", {"target_p95_ms": "1000"})
    html = response.content.decode()
    assert response.status_code == 200 and response.context["recommended"] is None
    assert "No window meets p95 ≤ 1000 ms." in html and "The lowest p95 was 3000 ms (window 0 ms)" in html


@pytest.mark.parametrize("bad", ["fast", "-5", "0", "nan", "inf", "1e99"])
def test_a_bad_target_is_a_form_error_with_a_400(client, outsider, lab_run, bad):
    client.force_login(outsider)
    response = client.get(f"/lab/{lab_run.pk}/", {"target_p95_ms": bad})
    assert response.status_code == 400
    assert response.context["form"].errors["target_p95_ms"]
    assert response.context["recommended"] is None
    assert 'class="errorlist' in response.content.decode()


def test_an_unknown_run_is_a_404(client, outsider):
    client.force_login(outsider)
    assert client.get("/lab/999/").status_code == 404


def test_notes_are_escaped(client, outsider, lab_run):
    client.force_login(outsider)
    html = client.get(f"/lab/{lab_run.pk}/").content.decode()
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_a_run_without_a_target_asks_for_one(client, outsider, lab_run):
    lab_run.target_p95_ms = None
    lab_run.save()
    client.force_login(outsider)
    response = client.get(f"/lab/{lab_run.pk}/")
    assert response.context["recommended"] is None
    assert "Type a target p95 to get a recommended window." in response.content.decode()
