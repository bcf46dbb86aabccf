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


def test_the_demo_data_can_be_loaded_twice_and_rotates_the_demo_token(capsys):
    call_command("load_demo_data")
    first = capsys.readouterr().out.strip().splitlines()[-1]
    call_command("load_demo_data")
    second = capsys.readouterr().out.strip().splitlines()[-1]
    assert first != second
    assert source_authenticate(authorization=f"Bearer {first}") is None
    assert source_authenticate(authorization=f"Bearer {second}").name == "line-a-camera"


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
