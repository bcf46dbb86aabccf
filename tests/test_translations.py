"""Every text people read is marked for translation, and the Chinese catalog is complete, current and compiles.
`make messages` regenerates the catalogs; these tests fail until a new text is translated."""

import shutil
import subprocess
import sys

import polib
import pytest

from tests.i18n_scan import ROOT, python_unmarked, python_unmarked_all, template_unmarked, templates_unmarked

CATALOG = ROOT / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
# What `make messages` leaves out: code no person reads (tests, benchmarks, scripts) and installed packages.
IGNORED = ["tests/*", "bench/*", "scripts/*", "docs/*", "staticfiles/*", "node_modules/*"]


def test_the_scanner_finds_unmarked_text_and_visible_attributes_but_not_code_or_marked_text():
    found = template_unmarked(
        '{% load i18n %}<h1>{% translate "Jobs" %}</h1><p>Plain words {{ x }}</p><code>window_ms</code>'
        '<input placeholder="Search here"><span title="{% translate "Hi" %}">{{ n }} ms</span>'
        "{% blocktranslate %}Marked {{ y }}{% endblocktranslate %}{# a comment #}<script>let a = 1</script>",
        "t.html",
    )
    assert [item.text for item in found] == ["placeholder=Search here", "Plain words"]


def test_the_scanner_finds_unmarked_labels_choices_and_messages_in_python():
    source = (
        "from django import forms\n"
        "from django.utils.translation import gettext_lazy as _\n"
        "SORT_CHOICES = [('a', 'newest first'), ('b', _('oldest first'))]\n"
        "class F(forms.Form):\n"
        "    a = forms.CharField(label='Name')\n"
        "    b = forms.CharField(label=_('Name'))\n"
        "    c = forms.CharField()\n"
        "def view(request):\n"
        "    messages.success(request, f'Saved {1} things')\n"
        "    raise JobRejected(_('Fine.'), code='x')\n"
    )
    found = sorted(item.text for item in python_unmarked(source, "app/forms.py"))
    assert found == ["'Name'", "'newest first'", "c: a field without a label", "f'Saved {1} things'"]


def test_every_text_in_the_templates_is_marked_for_translation():
    assert [str(item) for item in templates_unmarked()] == []


def test_every_text_shown_from_python_is_marked_for_translation():
    assert [str(item) for item in python_unmarked_all()] == []


def test_the_chinese_catalog_has_no_empty_or_fuzzy_entry():
    catalog = polib.pofile(str(CATALOG))
    assert [entry.msgid for entry in catalog.untranslated_entries()] == []
    assert [entry.msgid for entry in catalog.fuzzy_entries()] == []
    assert catalog.percent_translated() == 100


@pytest.mark.skipif(not shutil.which("xgettext"), reason="GNU gettext (xgettext) is not installed")
def test_the_chinese_catalog_holds_exactly_the_texts_the_code_marks(tmp_path):
    # makemessages writes into the locale folder beside the code it reads: run it in a copy of the code.
    for part in ("edgeportal", "inference", "templates", "locale"):
        shutil.copytree(ROOT / part, tmp_path / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "manage.py", tmp_path)
    command = [sys.executable, "manage.py", "makemessages", "-l", "zh_Hans", "--no-obsolete", "-v", "0"]
    subprocess.run(command + [f"--ignore={pattern}" for pattern in IGNORED], cwd=tmp_path, check=True)
    fresh = polib.pofile(str(tmp_path / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"))
    ours = polib.pofile(str(CATALOG))
    keys = lambda catalog: {(entry.msgctxt, entry.msgid) for entry in catalog if not entry.obsolete}  # noqa: E731
    assert sorted(keys(fresh) - keys(ours), key=str) == [], "new texts: run make messages and translate them"
    assert sorted(keys(ours) - keys(fresh), key=str) == [], "texts no longer used: run make messages"


@pytest.mark.skipif(not shutil.which("msgfmt"), reason="GNU gettext (msgfmt) is not installed")
def test_the_catalog_compiles_and_the_compiled_file_in_git_is_current(tmp_path):
    compiled = tmp_path / "django.mo"
    # What compilemessages runs (with its format checks): placeholders must match between English and Chinese.
    subprocess.run(["msgfmt", "--check-format", "-o", str(compiled), str(CATALOG)], check=True)
    assert _messages(polib.mofile(str(compiled))) == _messages(polib.mofile(str(CATALOG.with_suffix(".mo"))))


def _messages(catalog) -> set:
    return {(entry.msgctxt, entry.msgid, entry.msgstr, tuple(sorted(entry.msgstr_plural.items()))) for entry in catalog}
