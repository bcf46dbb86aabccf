"""Screen boards: who may open one, what it shows, and the fragment its screen polls."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from edgeportal.boards.models import Board
from edgeportal.boards.selectors import board_outputs
from edgeportal.jobs.models import Job
from edgeportal.outputs.models import JobOutput
from edgeportal.sources.services import source_create
from tests.conftest import make_template

Status = JobOutput.Status


@pytest.fixture(autouse=True)
def _db(db):
    pass


@pytest.fixture
def screen_template():
    return make_template(slug="line-notice", title="Line notice", body="Notice for line {line}.", max_new_tokens=16)


@pytest.fixture
def board():
    return Board.objects.create(slug="line-3", name="Line 3", output_names=["screen"])


@pytest.fixture
def public_board():
    return Board.objects.create(slug="hall-b", name="Hall B", output_names=["screen"], is_public=True)


_clock = iter(range(1, 10_000))


def make_output(text="Line 3 restarts in 10 minutes.", *, name="screen", status=Status.DONE, template=None,
                source=None, spec=None, finished_at=None, language="en") -> JobOutput:  # fmt: skip
    """A job and one of its outputs, finished a second after the one made before it (unless told when)."""
    job = Job.objects.create(prompt="Notice for line 3.", max_new_tokens=16, template=template, source=source)
    finished_at = finished_at or timezone.now() - timedelta(hours=1) + timedelta(seconds=next(_clock))
    return JobOutput.objects.create(
        job=job, name=name, status=status, text=text, spec=spec or {"name": name}, language=language,
        finished_at=finished_at,
    )  # fmt: skip


def shown(response) -> list[str]:
    return [output.text for output in response.context["outputs"]]


def test_a_public_board_shows_its_outputs_without_a_login(client, public_board, screen_template):
    make_output("Hall B: forklift traffic until 16:30.", template=screen_template)
    response = client.get("/boards/hall-b/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Hall B: forklift traffic until 16:30." in html and "<html" in html and 'id="board-outputs"' in html
    assert "Line notice" in html  # the template's title
    assert 'hx-get="/boards/hall-b/"' in html and 'hx-trigger="every 5s"' in html


def test_a_private_board_does_not_exist_without_its_token(client, board):
    make_output()
    response, missing = client.get("/boards/line-3/"), client.get("/boards/no-such-board/")
    assert response.status_code == missing.status_code == 404
    assert [t.name for t in response.templates] == [t.name for t in missing.templates] == ["404.html", "_base.html"]
    assert "Line 3" not in response.content.decode()
    assert client.get("/boards/line-3/", headers={"HX-Request": "true"}).status_code == 404


def test_a_private_board_opens_with_its_token_and_keeps_it_for_its_polls(client, board):
    make_output("Line 3 restarts in 10 minutes.")
    response = client.get(f"/boards/line-3/?token={board.token}")
    assert response.status_code == 200
    assert shown(response) == ["Line 3 restarts in 10 minutes."]
    assert f'hx-get="/boards/line-3/?token={board.token}"' in response.content.decode()


@pytest.mark.parametrize("token", ["wrong", "", "é" * 32, " "])
def test_a_wrong_token_is_a_404_like_a_missing_board(client, board, token):
    assert client.get("/boards/line-3/", {"token": token}).status_code == 404
    assert client.get("/boards/no-such-board/", {"token": token}).status_code == 404


def test_another_boards_token_does_not_open_it(client, board, public_board):
    other = Board.objects.create(slug="line-4", name="Line 4")
    assert client.get(f"/boards/line-3/?token={other.token}").status_code == 404


def test_staff_open_a_private_board_without_its_token(client, board, admin_user, manager):
    client.force_login(manager)  # logged in, but not staff
    assert client.get("/boards/line-3/").status_code == 404
    client.force_login(admin_user)
    response = client.get("/boards/line-3/")
    assert response.status_code == 200
    assert 'hx-get="/boards/line-3/"' in response.content.decode()  # no token to carry on


def test_a_renewed_token_shuts_out_the_old_url(client, board, admin_user):
    old = board.token
    client.force_login(admin_user)
    response = client.post("/admin/boards/board/", {"action": "new_token", "_selected_action": [board.pk]}, follow=True)
    board.refresh_from_db()
    assert board.token != old
    assert f"/boards/line-3/?token={board.token}" in response.content.decode()
    client.logout()
    assert client.get(f"/boards/line-3/?token={old}").status_code == 404
    assert client.get(f"/boards/line-3/?token={board.token}").status_code == 200


def test_an_htmx_poll_gets_only_the_fragment(client, public_board):
    make_output("Shift change at 14:00.")
    response = client.get("/boards/hall-b/", headers={"HX-Request": "true"})
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<section id="board-outputs"')
    assert "<html" not in html and "Shift change at 14:00." in html
    assert "HX-Request" in response["Vary"] and "no-cache" in response["Cache-Control"]


def test_it_shows_only_deliverable_outputs_of_its_names(client, public_board):
    make_output("done", status=Status.DONE)
    make_output("other language, delivered anyway", status=Status.LANGUAGE_MISMATCH,
                spec={"name": "screen", "on_mismatch": "deliver"})  # fmt: skip
    make_output("other language, held", status=Status.LANGUAGE_MISMATCH, spec={"name": "screen", "on_mismatch": "hold"})
    for status in (Status.PENDING, Status.RUNNING, Status.INVALID, Status.FAILED, Status.EXPIRED):
        make_output(f"not final or not deliverable: {status}", status=status)
    make_output("a ticket, not for the screen", name="ticket")
    assert shown(client.get("/boards/hall-b/")) == ["other language, delivered anyway", "done"]


def test_the_selector_agrees_with_the_outputs_own_deliverable_rule(public_board):
    public_board.how_many = 20
    made = [
        make_output(f"{status} {on_mismatch}", status=status, spec={"name": "screen", "on_mismatch": on_mismatch})
        for status in Status.values
        for on_mismatch in ("deliver", "hold")
    ]
    assert {output.pk for output in board_outputs(board=public_board)} == {o.pk for o in made if o.deliverable}


def test_it_shows_several_output_names(client, public_board):
    public_board.output_names = ["screen", "andon"]
    public_board.save()
    make_output("screen line", name="screen")
    make_output("andon line", name="andon")
    make_output("ticket", name="ticket")
    assert shown(client.get("/boards/hall-b/")) == ["andon line", "screen line"]


def test_it_shows_only_outputs_of_its_templates_when_it_names_some(client, public_board, screen_template):
    other = make_template(slug="defect", title="Defect", body="Defect {defect}.", max_new_tokens=8)
    make_output("from the notice", template=screen_template)
    make_output("from the defect template", template=other)
    make_output("from a free prompt")
    assert len(shown(client.get("/boards/hall-b/"))) == 3  # none named: all
    public_board.templates.add(screen_template)
    assert shown(client.get("/boards/hall-b/")) == ["from the notice"]


def test_it_shows_only_outputs_of_its_sources_when_it_names_some(client, public_board):
    camera, _ = source_create(name="camera-c3", kind="camera")
    plc, _ = source_create(name="plc-p3", kind="plc")
    make_output("from the camera", source=camera)
    make_output("from the plc", source=plc)
    make_output("from a manager")
    public_board.sources.add(camera, plc)
    assert shown(client.get("/boards/hall-b/")) == ["from the plc", "from the camera"]
    public_board.sources.remove(plc)
    assert shown(client.get("/boards/hall-b/")) == ["from the camera"]


def test_it_shows_the_latest_how_many_newest_first(client, public_board):
    now = timezone.now()
    for minutes in (5, 1, 3, 2, 4, 6, 7):
        make_output(f"{minutes} minutes ago", finished_at=now - timedelta(minutes=minutes))
    public_board.how_many = 3
    public_board.save()
    assert shown(client.get("/boards/hall-b/")) == ["1 minutes ago", "2 minutes ago", "3 minutes ago"]


def test_output_text_is_escaped(client, public_board):
    make_output('<script>alert("x")</script><b>P3</b> & C3')
    html = client.get("/boards/hall-b/").content.decode()
    assert "<script>alert" not in html and "<b>P3</b>" not in html
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;b&gt;P3&lt;/b&gt; &amp; C3" in html


def test_times_are_the_plants_local_time(client, public_board, settings):
    settings.TIME_ZONE = "Asia/Shanghai"
    make_output(finished_at=datetime(2026, 3, 1, 6, 30, 5, tzinfo=UTC))
    html = client.get("/boards/hall-b/").content.decode()
    assert '<time datetime="2026-03-01T14:30:05+08:00"' in html and "2026-03-01 14:30:05 CST" in html


def test_an_empty_board_says_so_in_the_pages_language(client, public_board):
    assert "Nothing to show yet." in client.get("/boards/hall-b/").content.decode()
    html = client.get("/boards/hall-b/", headers={"Accept-Language": "zh-Hans"}).content.decode()
    assert '<html lang="zh-hans">' in html


def test_a_board_gets_a_token_of_its_own_when_created():
    first = Board.objects.create(slug="a", name="A")
    second = Board.objects.create(slug="b", name="B")
    assert len(first.token) >= 32 and first.token != second.token


@pytest.mark.parametrize(
    ("field", "value"),
    [("output_names", []), ("output_names", "screen"), ("output_names", ["Screen"]), ("output_names", [3]),
     ("how_many", 0), ("how_many", 21)],
)  # fmt: skip
def test_a_board_with_a_bad_setting_is_refused(field, value):
    board = Board(slug="line-3", name="Line 3", **{field: value})
    with pytest.raises(ValidationError) as refused:
        board.full_clean()
    assert field in refused.value.message_dict


def test_the_admin_shows_the_screen_url_with_its_token(client, admin_user, board, public_board):
    client.force_login(admin_user)
    html = client.get("/admin/boards/board/").content.decode()
    assert f"/boards/line-3/?token={board.token}" in html
    assert "/boards/hall-b/<" in html  # public: no token needed
    html = client.get(f"/admin/boards/board/{board.pk}/change/").content.decode()
    assert f"/boards/line-3/?token={board.token}" in html


def test_an_admin_creates_a_board(client, admin_user, screen_template):
    client.force_login(admin_user)
    response = client.post(
        "/admin/boards/board/add/",
        {"slug": "line-5", "name": "Line 5", "output_names": '["screen"]', "how_many": "8",
         "templates": [screen_template.pk]},
    )  # fmt: skip
    assert response.status_code == 302
    board = Board.objects.get(slug="line-5")
    assert board.how_many == 8 and not board.is_public and list(board.templates.all()) == [screen_template]
