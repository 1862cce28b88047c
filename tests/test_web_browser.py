"""The dashboard in a real browser: headless Chromium (Debian's chromium and
chromium-driver, driven by Selenium) against the ASGI app served by uvicorn.

With ``PGQUEUE_SCREENSHOTS=docs/screenshots`` the test saves PNGs of the main
pages there (the README shows them); without it, nothing is written.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from web_helpers import dead_job, history, make_app, running_worker, serve, wait_until

import pgqueue
from pgqueue.web import asgi_app

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,1000")  # fmt: skip

if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    # CI installs both (.ci/run); there a missing browser is a failure, not a skip.
    if os.environ.get("CI"):
        raise RuntimeError(f"{CHROMIUM} and {CHROMEDRIVER} are needed (apt-get install "
                           "chromium chromium-driver)")  # fmt: skip
    pytest.skip("needs Debian's chromium and chromium-driver", allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.common.exceptions import (  # noqa: E402
    NoSuchElementException,
    StaleElementReferenceException,
)
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402


@contextmanager
def chromium(javascript: bool = True) -> Iterator[WebDriver]:
    """Headless Chromium with a fresh profile (scripts off when asked)."""
    profile = tempfile.mkdtemp(prefix="pgqueue-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    if not javascript:
        options.add_experimental_option(
            "prefs", {"profile.managed_default_content_settings.javascript": 2})  # fmt: skip
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    with chromium() as driver:
        yield driver


@pytest.fixture
def app(clean_db: str) -> Iterator[pgqueue.App]:
    app = make_app(clean_db)
    yield app
    app.close()


def shot(driver: WebDriver, name: str) -> None:
    """Save a screenshot when PGQUEUE_SCREENSHOTS names a folder."""
    folder = os.environ.get("PGQUEUE_SCREENSHOTS")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(max(700, int(height) + 20), 1800))
    driver.save_screenshot(str(Path(folder) / f"{name}.png"))
    driver.set_window_size(1280, 1000)


def console_errors(driver: WebDriver) -> list[Any]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def text(driver: WebDriver) -> str:
    """The page's visible text ("" while a navigation replaces the page)."""
    try:
        return str(driver.find_element(By.TAG_NAME, "body").text)
    except (StaleElementReferenceException, NoSuchElementException):
        return ""


def test_dead_job_found_retried_and_queue_paused_in_the_browser(
    app: pgqueue.App, browser: WebDriver, clean_db: str
) -> None:
    history(clean_db)
    job = dead_job(app)
    tick = app.tasks["work.tick"]
    app.enqueue_many([tick.job(i) for i in range(20)])
    tick.options(delay=3600).enqueue(99)
    app.add_schedule("nightly-report", cron="0 3 * * *", task="work.tick", args=[1])
    app.add_schedule("sync-crm", cron="*/15 * * * *", timezone="Europe/Paris", task="work.tick",
                     args=[2], missed="all", max_catchup=4)  # fmt: skip
    with running_worker(app, queues=("work",)) as worker, serve(asgi_app(app)) as url:
        wait_until(lambda: worker.processed >= 20)  # the ready "work" jobs ran

        # The overview: queues with their counts, the charts, the live worker.
        browser.get(url + "/")
        assert browser.title == "Overview · pgqueue"
        assert "mail" in text(browser) and "Live workers (1)" in text(browser)
        assert len(browser.find_elements(By.CSS_SELECTOR, "svg.chart")) == 2
        shot(browser, "overview")
        # Keyboard: the first Tab reaches the skip link, which moves focus to the content.
        browser.find_element(By.TAG_NAME, "body").send_keys(Keys.TAB)
        assert browser.switch_to.active_element.text == "Skip to content"

        # Jobs, filtered to dead with the form.
        browser.find_element(By.LINK_TEXT, "Jobs").click()
        Select(browser.find_element(By.NAME, "status")).select_by_value("dead")
        browser.find_element(By.CSS_SELECTOR, "form.filters button[type=submit]").click()
        wait_until(lambda: "status=dead" in browser.current_url)
        rows = browser.find_elements(By.CSS_SELECTOR, "main table tbody tr")
        assert len(rows) == 38 and all(" dead " in f" {r.text} " for r in rows)
        browser.find_element(By.CSS_SELECTOR, "input[data-select-all]").click()
        boxes = browser.find_elements(By.CSS_SELECTOR, 'input[name="ids"]')
        assert len(boxes) == 38 and all(b.is_selected() for b in boxes)
        browser.find_element(By.CSS_SELECTOR, "input[data-select-all]").click()
        shot(browser, "jobs")
        browser.find_element(By.NAME, "queue").send_keys("mail", Keys.ENTER)
        wait_until(lambda: "queue=mail" in browser.current_url)
        rows = browser.find_elements(By.CSS_SELECTOR, "main table tbody tr")
        assert len(rows) == 1 and "mail.send" in rows[0].text

        # The job: its traceback, then Retry; the page shows it queued.
        browser.find_element(By.LINK_TEXT, str(job.id)).click()
        assert browser.title == f"Job {job.id} · pgqueue"
        traceback = browser.find_element(By.CSS_SELECTOR, "details.attempt[open] pre.traceback")
        assert "Traceback (most recent call last)" in traceback.text
        assert "ValueError: mailbox ops@example.com is full" in traceback.text
        shot(browser, "job")
        browser.find_element(By.CSS_SELECTOR, "button[value=retry]").click()
        wait_until(lambda: "retried 1 of 1 job(s)" in text(browser))
        status = browser.find_element(By.CSS_SELECTOR, ".summary .status")
        assert status.text == "queued"
        assert "no live worker serves queue mail" in text(browser)
        assert app.get_job(job.id).status == "queued"

        # Pause "work" from /queues: the worker stops claiming from it.
        browser.find_element(By.LINK_TEXT, "Queues").click()
        browser.find_element(By.XPATH, "//button[normalize-space()='Pause work']").click()
        wait_until(lambda: "queue work paused" in text(browser))
        assert browser.find_elements(By.XPATH, "//button[normalize-space()='Resume work']")
        shot(browser, "queues")
        claimed = worker.claimed
        held = tick.enqueue(100)
        time.sleep(1.0)  # ten poll intervals of the worker, and its wake-up
        assert app.get_job(held.id).status == "queued"
        assert worker.claimed == claimed
        browser.get(f"{url}/jobs/{held.id}")
        assert "queue work is paused" in text(browser)
        browser.find_element(By.LINK_TEXT, "Queues").click()
        browser.find_element(By.XPATH, "//button[normalize-space()='Resume work']").click()
        wait_until(lambda: app.get_job(held.id).status == "succeeded")

        for name in ("schedules", "workers", "dead"):
            browser.get(f"{url}/{name}")
            assert browser.find_element(By.TAG_NAME, "h1").text
            shot(browser, name)
        browser.get(f"{url}/schedules")
        assert "nightly-report" in text(browser)
        assert "Run now" in text(browser)

        # Dark mode, as a reader with prefers-color-scheme: dark sees it.
        browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {
            "features": [{"name": "prefers-color-scheme", "value": "dark"}]})  # fmt: skip
        browser.get(url + "/")
        background = browser.execute_script(
            "return getComputedStyle(document.body).backgroundColor")  # fmt: skip
        assert background == "rgb(13, 17, 23)"
        shot(browser, "overview-dark")
        # htmx refreshes the overview by itself (every 5 s): let one refresh happen.
        browser.execute_script("window.__marker = 1; document.getElementById('live')"
                               ".setAttribute('data-old', '1')")  # fmt: skip
        wait_until(lambda: browser.execute_script(
            "return document.getElementById('live').getAttribute('data-old')") is None,
            timeout=12)  # fmt: skip
        assert browser.execute_script("return window.__marker") == 1  # no full reload

        assert console_errors(browser) == []


def test_pages_read_and_act_without_javascript(app: pgqueue.App) -> None:
    job = dead_job(app)
    with chromium(javascript=False) as browser, serve(asgi_app(app)) as url:
        browser.get(url + "/")
        # Page scripts are off (htmx never loaded); WebDriver's own still run.
        assert browser.execute_script("return typeof window.htmx") == "undefined"
        assert "mail" in text(browser)
        browser.get(f"{url}/jobs?status=dead")
        # The select-all box needs a script: without one it stays hidden.
        assert not browser.find_element(By.CSS_SELECTOR, "input[data-select-all]").is_displayed()
        browser.find_element(By.LINK_TEXT, str(job.id)).click()
        assert "ValueError: mailbox ops@example.com is full" in text(browser)
        browser.find_element(By.CSS_SELECTOR, "button[value=retry]").click()
        wait_until(lambda: "retried 1 of 1 job(s)" in text(browser))
        assert app.get_job(job.id).status == "queued"
