import pytest
from django.core.management import CommandError, call_command

from edgeportal.sources.models import Source
from edgeportal.sources.services import source_authenticate, token_hash


@pytest.fixture(autouse=True)
def _db(db):
    pass


def test_it_prints_the_token_alone_on_the_last_line_and_stores_only_its_hash(capsys):
    call_command("create_source", "plc-7", "--kind", "plc")
    token = capsys.readouterr().out.strip().splitlines()[-1]
    source = Source.objects.get(name="plc-7")
    assert source.kind == "plc"
    assert source.token_hash == token_hash(token) and token not in source.token_hash
    assert source_authenticate(authorization=f"Bearer {token}") == source


def test_a_duplicate_name_is_a_clear_error():
    call_command("create_source", "plc-7")
    with pytest.raises(CommandError, match="already exists"):
        call_command("create_source", "plc-7")


def test_rotate_source_token_prints_a_new_token_and_the_old_one_stops_working(capsys, source_token):
    call_command("rotate_source_token", "camera-c3")
    new_token = capsys.readouterr().out.strip().splitlines()[-1]
    assert source_authenticate(authorization=f"Bearer {source_token}") is None
    assert source_authenticate(authorization=f"Bearer {new_token}").name == "camera-c3"


def test_rotate_source_token_names_the_sources_when_the_name_is_unknown(source_token):
    with pytest.raises(CommandError, match=r"No source named 'camera-x' \(sources: camera-c3\)"):
        call_command("rotate_source_token", "camera-x")


def test_an_admin_creates_a_source_in_django_admin_and_sees_its_token_once(client, admin_user):
    client.force_login(admin_user)
    response = client.post(
        "/admin/sources/source/add/",
        {"name": "agv-f3", "kind": "agv", "is_active": "on", "allow_free_prompts": "on"},
        follow=True,
    )
    message = next(str(m) for m in response.context["messages"] if "shown once" in str(m))
    token = message.rsplit(" ", 1)[-1]
    assert source_authenticate(authorization=f"Bearer {token}").name == "agv-f3"


def test_an_admin_rotates_a_token_and_the_old_one_stops_working_at_once(client, admin_user, source_token):
    source = Source.objects.get(name="camera-c3")
    client.force_login(admin_user)
    response = client.post(
        "/admin/sources/source/", {"action": "rotate_tokens", "_selected_action": [source.pk]}, follow=True
    )
    message = next(str(m) for m in response.context["messages"] if "New token" in str(m))
    new_token = message.rsplit(" ", 1)[-1]
    assert source_authenticate(authorization=f"Bearer {source_token}") is None
    assert source_authenticate(authorization=f"Bearer {new_token}") == source


def test_an_admin_disables_a_source_and_its_requests_are_refused(client, admin_user, api):
    source = Source.objects.get(name="camera-c3")
    client.force_login(admin_user)
    client.post("/admin/sources/source/", {"action": "disable", "_selected_action": [source.pk]})
    assert api.post({"prompt": "hello"}).status_code == 401
