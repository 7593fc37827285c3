"""Real-browser fixtures: Debian's chromium driven by Playwright, a logged-in admin, an executor.

Never downloads a browser: Playwright launches /usr/bin/chromium. Without it (or
without Playwright) the browser tests skip locally; under CI=true they fail.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.contrib.contenttypes.models import ContentType
from django.db import close_old_connections, connections
from django.utils import timezone

from scheduler_app import services
from scheduler_app.models import TaskExecution
from tests.conftest import IN_CI
from tests.factories import make_user
from tests.sample_handlers.browser import FINISH, RELEASE

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}
ADMIN_PASSWORD = "browser-test-password"
#: Committed screenshots are refreshed with SCREENSHOTS=1 (make screenshots).
SCREENSHOTS_DIR = Path(settings.BASE_DIR) / "docs" / "screenshots"


def _unavailable(reason: str) -> None:
    if IN_CI:
        pytest.fail("CI=true but %s: the browser tests must run in CI." % reason)
    pytest.skip(reason)


@pytest.fixture(autouse=True)
def released_handler() -> Iterator[None]:
    """The browser sample handlers' events cleared for each test, and set after
    it: a run still waiting when a test fails must end, so its thread does too."""
    RELEASE.clear()
    FINISH.clear()
    yield
    RELEASE.set()
    FINISH.set()


@pytest.fixture
def browser(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A headless chromium, for one test.

    Playwright's sync API keeps an event loop running in this thread, which Django
    takes for an async context; the ORM calls the test itself makes are safe.
    """
    if not os.path.exists(CHROMIUM):
        _unavailable("%s is missing (make browser-deps installs it)" % CHROMIUM)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable(
            "playwright is not installed (pip install -r requirements-dev.txt)"
        )
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS
        )
        try:
            yield instance
        finally:
            instance.close()
            # While Playwright's loop runs, Django keeps this test's connections per
            # context rather than per thread; close them here, or PostgreSQL keeps
            # a session open and the test database cannot be dropped.
            connections.close_all()


@pytest.fixture
def admin_user(transactional_db: None) -> User:
    # An earlier transactional test flushed the tables, and the content types came
    # back with new ids: the cached ones would break the admin's LogEntry rows.
    ContentType.objects.clear_cache()
    return make_user(
        "admin", superuser=True, email="admin@example.com", password=ADMIN_PASSWORD
    )


def new_page(
    browser: Any, live_server: Any, user: User, *, language: str = "en"
) -> Any:
    """A page logged in through the admin login form, with the nav sidebar folded away."""
    context = browser.new_context(
        viewport=VIEWPORT,
        locale=language,
        extra_http_headers={"Accept-Language": language},
    )
    context.set_default_timeout(15_000)
    context.add_init_script(
        "localStorage.setItem('django.admin.navSidebarIsOpen', 'false')"
    )
    page = context.new_page()
    page.goto(live_server.url + "/admin/login/")
    page.fill("#id_username", user.get_username())
    page.fill("#id_password", ADMIN_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(live_server.url + "/admin/")
    return page


@pytest.fixture
def page(browser: Any, live_server: Any, admin_user: User) -> Iterator[Any]:
    page = new_page(browser, live_server, admin_user)
    yield page
    page.context.close()


@pytest.fixture
def screenshot(tmp_path: Path) -> Any:
    """Save a screenshot: into docs/screenshots/ with SCREENSHOTS=1, else a temporary folder."""
    folder = SCREENSHOTS_DIR if os.environ.get("SCREENSHOTS") == "1" else tmp_path

    def take(page: Any, name: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / ("%s.png" % name)
        page.screenshot(path=str(path), animations="disabled", caret="hide")
        return path

    return take


class InProcessExecutor:
    """Starts pending executions through services.execution_run, in a background thread."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.errors: list[BaseException] = []
        self.started: set[int] = set()
        self.thread = threading.Thread(
            target=self._loop, name="test-executor", daemon=True
        )

    def _loop(self) -> None:
        try:
            while not self.stop.wait(0.05):
                close_old_connections()
                startable = TaskExecution.objects.startable(now=timezone.now())
                for execution in startable.exclude(pk__in=self.started)[:5]:
                    self.started.add(execution.pk)
                    threading.Thread(
                        target=self._run,
                        args=(execution,),
                        name="test-run",
                        daemon=True,
                    ).start()
        except BaseException as exc:  # reported by the fixture at teardown
            self.errors.append(exc)
        finally:
            connections.close_all()

    def _run(self, execution: TaskExecution) -> None:
        try:
            services.execution_run(execution=execution)
        except BaseException as exc:  # reported by the fixture at teardown
            self.errors.append(exc)
        finally:
            connections.close_all()


@pytest.fixture
def executor(transactional_db: None) -> Iterator[InProcessExecutor]:
    runner = InProcessExecutor()
    runner.thread.start()
    yield runner
    runner.stop.set()
    runner.thread.join(timeout=10)
    assert not runner.errors, runner.errors
