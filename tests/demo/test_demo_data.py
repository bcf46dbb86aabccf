"""Demo data is loaded once, into a fresh database: a later start changes no password and no token."""

import pytest
from django.contrib.auth import authenticate
from django.contrib.auth.models import User
from django.core.management import call_command
from django.test import RequestFactory

from edgeportal.boards.models import Board
from edgeportal.demo.data import DEMO_LOGINS, demo_data_load
from edgeportal.prompts.models import PromptTemplate
from edgeportal.sources.services import source_authenticate


@pytest.fixture(autouse=True)
def _db(db):
    pass


def load(capsys) -> list[str]:
    call_command("load_demo_data")
    return capsys.readouterr().out.strip().splitlines()


def can_log_in(username: str, password: str) -> bool:
    return authenticate(RequestFactory().post("/login/"), username=username, password=password) is not None


def test_the_first_run_creates_the_accounts_templates_and_source_and_prints_its_token(capsys):
    lines = load(capsys)
    assert "manager / manager-demo-pass" in lines[0] and "admin / admin-demo-pass" in lines[0]
    assert "shown once" in lines[-2]
    assert source_authenticate(authorization=f"Bearer {lines[-1]}").name == "line-a-camera"
    assert all(can_log_in(username, password) for username, password in DEMO_LOGINS.items())
    assert PromptTemplate.objects.count() == 4
    assert PromptTemplate.objects.get(slug="inspection-steps").candidates == 3  # reranked, in English
    incident = PromptTemplate.objects.get(slug="line-incident")
    assert [spec.name for spec in incident.output_specs()] == ["ticket", "mes", "screen"]
    assert Board.objects.get(slug="line-a").is_public  # shows the screen output


def test_a_later_run_keeps_a_changed_password_and_the_sources_token(capsys):
    token = load(capsys)[-1]
    admin = User.objects.get(username="admin")
    admin.set_password("changed-by-the-plant")
    admin.save()

    lines = load(capsys)

    assert can_log_in("admin", "changed-by-the-plant") and not can_log_in("admin", "admin-demo-pass")
    assert source_authenticate(authorization=f"Bearer {token}").name == "line-a-camera"
    assert not any(token in line for line in lines)
    assert "rotate_source_token line-a-camera" in lines[-1]


def test_a_demo_account_an_admin_deleted_is_not_created_again(capsys):
    load(capsys)
    User.objects.filter(username="manager").delete()
    load(capsys)
    assert not User.objects.filter(username="manager").exists()


def test_a_database_that_has_accounts_gets_no_demo_data():
    User.objects.create_superuser("plant-admin", password="own-password")
    assert demo_data_load().created is False
    assert list(User.objects.values_list("username", flat=True)) == ["plant-admin"]
    assert not PromptTemplate.objects.exists()
