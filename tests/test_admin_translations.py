"""The Django admin in the plant's language: our apps', models' and fields' names, and our columns, are marked
for translation and translated in the Chinese catalog."""

import pytest
from django.apps import apps
from django.contrib import admin
from django.utils import translation
from django.utils.functional import Promise

from edgeportal.jobs.models import Job
from tests.conftest import make_template


def our_admins():
    return [(model, model_admin) for model, model_admin in admin.site._registry.items()
            if model.__module__.startswith("edgeportal.")]  # fmt: skip


def names_shown():
    """Every name the admin shows of ours: (where, the lazy text)."""
    shown = []
    for model in apps.get_models():
        if not model.__module__.startswith("edgeportal."):
            continue
        label = model._meta.label
        shown += [
            (f"{label} (model)", model._meta.verbose_name),
            (f"{label} (plural)", model._meta.verbose_name_plural),
        ]
        for field in [*model._meta.concrete_fields, *model._meta.many_to_many]:
            if field.name != "id":
                shown.append((f"{label}.{field.name}", field.verbose_name))
    for model, model_admin in our_admins():
        for column in model_admin.list_display:
            if callable(attribute := getattr(model_admin, column, None)):
                shown.append((f"{model._meta.label} column {column}", attribute.short_description))
    shown += [(f"app {config.label}", config.verbose_name) for config in apps.get_app_configs()
              if config.name.startswith("edgeportal.") and config.models_module is not None]  # fmt: skip
    return shown


def test_every_name_the_admin_shows_of_ours_is_marked_for_translation():
    unmarked = [where for where, text in names_shown() if not isinstance(text, Promise)]
    assert unmarked == []


def test_every_such_name_has_a_chinese_translation():
    with translation.override("zh-hans"):
        untranslated = [(where, str(text)) for where, text in names_shown() if str(text) == _english(text) != "URL"]
    assert untranslated == []


def _english(text) -> str:
    with translation.override("en"):
        return str(text)


@pytest.mark.django_db
def test_the_job_and_template_lists_of_the_admin_read_in_chinese(admin_client):
    template = make_template(slug="notice", title="Notice", body="Line {line} stops.")
    Job.objects.create(template=template, prompt="Line A stops.", max_new_tokens=8)
    for url, english in (("/admin/jobs/job/", "Submitted by"), ("/admin/prompts/prompttemplate/", "Max new tokens")):
        page = admin_client.get(url, HTTP_ACCEPT_LANGUAGE="zh-CN,zh").content.decode()
        assert english not in page and "Status" not in page
        assert english in admin_client.get(url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
