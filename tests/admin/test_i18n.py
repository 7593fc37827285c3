"""Languages: English by default, Simplified Chinese by setting or browser, a complete catalog."""

from __future__ import annotations

import gettext
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.test import Client
from django.utils import translation

from tests.admin.helpers import (
    EXECUTION_CHANGELIST,
    TASK_ADD,
    TASK_CHANGELIST,
    execution_url,
)
from tests.factories import make_execution, make_task

pytestmark = pytest.mark.django_db

LOCALE = Path(django_settings.BASE_DIR) / "locale" / "zh_Hans" / "LC_MESSAGES"


def read_po(path: Path) -> dict[str, str]:
    """msgid -> msgstr (msgstr[0] for plurals) of every entry but the header."""
    entries: dict[str, str] = {}
    text = path.read_text(encoding="utf-8")
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        current = None
        for line in block.splitlines():
            match = re.match(
                r"^(msgid|msgid_plural|msgstr|msgstr\[0\]) (\".*\")$", line
            )
            if match:
                current = match.group(1)
                fields[current] = _unquote(match.group(2))
            elif line.startswith('"') and current:
                fields[current] += _unquote(line)
            elif not line.startswith('"'):
                current = None
        if fields.get("msgid"):
            entries[fields["msgid"]] = fields.get("msgstr", fields.get("msgstr[0]", ""))
    return entries


def _unquote(quoted: str) -> str:
    # PO escapes (backslash-quote, -backslash, -n, -t) are a subset of JSON's.
    return json.loads(quoted)


def test_english_is_the_default(admin_client: Client) -> None:
    content = admin_client.get(TASK_CHANGELIST).content.decode()

    assert "Run selected tasks now" in content
    assert "No scheduler is running." in content


def test_the_browser_language_picks_chinese(admin_client: Client) -> None:
    make_task(name="every_6h", interval_seconds=6 * 3600)

    content = admin_client.get(
        TASK_CHANGELIST, HTTP_ACCEPT_LANGUAGE="zh-CN,zh;q=0.9"
    ).content.decode()

    assert "立即运行所选任务" in content
    assert "没有正在运行的调度器。" in content
    assert "每 6 小时" in content
    assert "Run selected tasks now" not in content


def test_language_code_setting_picks_chinese(
    admin_client: Client, settings: Any
) -> None:
    settings.LANGUAGE_CODE = "zh-hans"

    content = admin_client.get(EXECUTION_CHANGELIST).content.decode()

    assert "任务执行" in content
    assert "失败：超时" in content


def test_the_task_form_speaks_chinese(admin_client: Client) -> None:
    response = admin_client.get(
        TASK_ADD, {"handler_path": "scripts:data_sync"}, HTTP_ACCEPT_LANGUAGE="zh-hans"
    )

    content = response.content.decode()
    assert "处理器与参数" in content
    assert "类型：int · 默认：7" in content


def test_every_message_of_the_catalog_is_translated() -> None:
    entries = read_po(LOCALE / "django.po")

    assert len(entries) > 300
    assert [msgid for msgid, msgstr in entries.items() if not msgstr] == []


def test_the_compiled_catalog_matches_the_po_file() -> None:
    with (LOCALE / "django.mo").open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)

    entries = read_po(LOCALE / "django.po")

    stale = [
        msgid
        for msgid, msgstr in entries.items()
        if compiled.gettext(msgid) != msgstr
        and compiled.ngettext(msgid, msgid, 1) != msgstr
    ]
    assert stale == [], "run compilemessages: django.mo is older than django.po"


def test_no_translatable_string_is_missing_from_the_catalog(
    tmp_path: Path, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """makemessages over a copy of the sources finds nothing the catalog lacks."""
    if shutil.which("xgettext") is None:
        pytest.skip("xgettext is missing (apt-get install gettext)")
    base = Path(django_settings.BASE_DIR)
    sources = tmp_path / "src"
    for folder in ("scheduler_app", "templates"):
        shutil.copytree(
            base / folder,
            sources / folder,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    shutil.copytree(base / "locale", tmp_path / "locale")
    settings.LOCALE_PATHS = [tmp_path / "locale"]
    monkeypatch.chdir(sources)

    call_command("makemessages", locale=["zh_Hans"], no_obsolete=True, verbosity=0)

    refreshed = read_po(tmp_path / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po")
    assert [msgid for msgid, msgstr in refreshed.items() if not msgstr] == []


@pytest.mark.django_db
def test_the_product_s_own_stored_messages_are_shown_in_the_reader_s_language(
    admin_client: Client,
) -> None:
    task = make_task()
    ours = make_execution(
        task, status="cancelled", error_message="Cancelled on request."
    )
    theirs = make_execution(task, status="failed", error_message="KeyError: missing")
    with translation.override("zh-hans"):
        chinese = translation.gettext("Cancelled on request.")

    ours_page = admin_client.get(
        execution_url(ours), HTTP_ACCEPT_LANGUAGE="zh-hans"
    ).content.decode()
    theirs_page = admin_client.get(
        execution_url(theirs), HTTP_ACCEPT_LANGUAGE="zh-hans"
    ).content.decode()

    assert chinese != "Cancelled on request."
    assert chinese in ours_page and "Cancelled on request." not in ours_page
    assert "KeyError: missing" in theirs_page  # a handler's own text, as it is
