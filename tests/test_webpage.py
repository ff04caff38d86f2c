"""The web page in a real browser (Debian's Chromium through its ChromeDriver) against the real REST
server on loopback: connect with a tenant key, browse, search, build a context block, inspect a
memory and follow its sources, delete one; another tenant's memory never shows; stored text is shown
as text, never run as markup.

Without Chromium and ChromeDriver on the machine these tests are skipped, unless
MEMSTRATA_REQUIRE_BROWSER=1 (CI sets it), which makes a missing browser a failure.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import httpx
import pytest

from memstrata.server.keys import KeyStore
from memstrata.server.launch import server_process
from memstrata.server.webpage import PAGE_PATH, SECURITY_HEADERS

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
REQUIRED = os.environ.get("MEMSTRATA_REQUIRE_BROWSER") == "1"
HOSTILE = '<img src=x onerror="window.pwned=1">Ana said <b>bold</b> things'

if REQUIRED:
    from selenium import webdriver
else:
    webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as EC  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("web")
    keys = KeyStore(tmp / "m.db.keys.db")
    tokens = {"acme": keys.create(tenant="acme").token, "beta": keys.create(tenant="beta").token}
    keys.close()
    with server_process(db=tmp / "m.db") as srv:
        srv.tokens = tokens

        def add(who: str, user: str, messages: list[dict]) -> dict:
            r = httpx.post(srv.url + "/v1/memories", json={"user_id": user, "messages": messages},
                           headers={"Authorization": f"Bearer {tokens[who]}"}, timeout=60)
            assert r.status_code == 201, r.text
            return r.json()

        srv.ana = add("acme", "ana", [
            {"role": "user", "speaker": "Ana", "content": "I moved to Lisbon last week, the light here is amazing.",
             "timestamp": "2024-05-14T10:00:00Z"},
            {"role": "user", "speaker": "Ana", "content": "I adopted a grey cat called Miso from the shelter.",
             "timestamp": "2024-05-15T10:00:00Z"},
            {"role": "user", "speaker": "Ana", "content": HOSTILE, "timestamp": "2024-05-16T10:00:00Z"},
        ])
        add("beta", "bob", [{"role": "user", "speaker": "Bob", "content": "Bob keeps bees on a roof in Oslo."}])
        yield srv


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and CHROMEDRIVER):
        message = "needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
        if REQUIRED:
            pytest.fail(message)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1000"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def wait(driver, condition, timeout: float = 20):
    return WebDriverWait(driver, timeout).until(condition)


def text_of(driver, element_id: str) -> str:
    """The element's rendered text, read in one step (the page may replace the element meanwhile)."""
    return driver.execute_script("const e = document.getElementById(arguments[0]); return e ? e.innerText : ''", element_id)


def idle(driver) -> None:
    """Wait until the page has no request in flight (it counts them on <body data-pending>)."""
    wait(driver, lambda d: d.execute_script("return document.body.dataset.pending") in (None, "0"))


def connect(driver, server, who: str | None) -> None:
    driver.get(server.url + PAGE_PATH)
    idle(driver)  # the page connects by itself with a key kept in the tab: let that finish first
    driver.execute_script("sessionStorage.clear()")
    key = driver.find_element(By.ID, "key")
    key.clear()
    if who:
        key.send_keys(server.tokens[who])
    driver.find_element(By.CSS_SELECTOR, "#connect button").click()
    idle(driver)


def test_the_page_is_served_with_a_strict_content_security_policy(server):
    r = httpx.get(server.url + "/", follow_redirects=True, timeout=10)
    assert r.status_code == 200 and r.url.path == PAGE_PATH
    assert r.headers["content-security-policy"] == SECURITY_HEADERS["Content-Security-Policy"]
    assert "script-src 'self'" in r.headers["content-security-policy"]  # no inline script may run
    assert httpx.get(server.url + PAGE_PATH + "/app.js", timeout=10).headers["content-type"].startswith("text/javascript")
    schema = httpx.get(server.url + "/openapi.json", timeout=10).json()
    assert PAGE_PATH not in schema["paths"] and "/v1/scopes" in schema["paths"]


def test_without_a_key_the_page_says_one_is_needed(server, browser):
    connect(browser, server, None)
    wait(browser, EC.visibility_of_element_located((By.ID, "error")))
    assert "API key" in text_of(browser, "error")
    assert not browser.find_element(By.ID, "workspace").is_displayed()


def test_a_wrong_key_is_refused_with_the_servers_message(server, browser):
    driver = browser
    driver.get(server.url + PAGE_PATH)
    driver.find_element(By.ID, "key").send_keys("ms_not_a_real_key")
    driver.find_element(By.CSS_SELECTOR, "#connect button").click()
    wait(driver, lambda d: d.find_element(By.ID, "error").text.strip())
    assert "key" in text_of(driver, "error").lower()
    assert not driver.find_element(By.ID, "workspace").is_displayed()


def test_browse_shows_only_the_tenants_memories_and_stored_markup_stays_text(server, browser):
    driver = browser
    connect(driver, server, "acme")
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#browse-rows tr")) >= 3)
    options = [o.text for o in Select(driver.find_element(By.ID, "scope")).options]
    assert options == ["user ana"], options  # beta's bob is another tenant's
    rows = text_of(driver, "browse-rows")
    assert "Lisbon" in rows and "Miso" in rows
    assert "bees" not in driver.page_source
    assert "episodes 3" in text_of(driver, "stats")
    # the hostile text is on the page as text: no <img> element was made and its handler never ran
    assert '<img src=x onerror="window.pwned=1">' in rows
    assert not driver.find_elements(By.CSS_SELECTOR, "#browse-rows img, #browse-rows b")
    assert driver.execute_script("return window.pwned") is None


def test_only_checked_layers_are_listed(server, browser):
    driver = browser
    connect(driver, server, "acme")
    wait(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#browse-rows tr")) >= 3)
    for box in driver.find_elements(By.CSS_SELECTOR, "#layers input"):
        if box.get_attribute("value") != "0":
            box.click()
    driver.find_element(By.CSS_SELECTOR, "#browse-form button").click()
    wait(driver, lambda d: {b.text for b in d.find_elements(By.CSS_SELECTOR, "#browse-rows .layer")} == {"L0"})
    assert len(driver.find_elements(By.CSS_SELECTOR, "#browse-rows tr")) == 3


def test_search_inspect_and_follow_a_note_to_the_turn_it_came_from(server, browser):
    driver = browser
    connect(driver, server, "acme")
    wait(driver, EC.visibility_of_element_located((By.ID, "workspace")))
    driver.find_element(By.CSS_SELECTOR, '#tabs button[data-tab="search"]').click()
    driver.find_element(By.ID, "query").send_keys("What is the name of Ana's cat?")
    driver.find_element(By.CSS_SELECTOR, "#search-form button").click()
    wait(driver, lambda d: "Miso" in d.find_element(By.ID, "search-rows").text)
    first = driver.find_element(By.CSS_SELECTOR, "#search-rows tr")
    assert "Miso" in first.text, "the best hit should be the cat"
    # pick a note (L1) hit and inspect it
    note_row = next(r for r in driver.find_elements(By.CSS_SELECTOR, "#search-rows tr")
                    if r.find_element(By.CSS_SELECTOR, ".layer").text == "L1" and "Miso" in r.text)
    note_id = note_row.get_attribute("data-id")
    note_row.click()
    wait(driver, lambda d: text_of(d, "inspected-id") == note_id)
    assert "Miso" in text_of(driver, "inspected-content")
    assert "created" in text_of(driver, "history")
    cat_episode = next(e for e in server.ana["episodes"] if "Miso" in e["content"])
    source = driver.find_element(By.CSS_SELECTOR, f'#inspector a.ref[data-id="{cat_episode["id"]}"]')
    assert "Ana: I adopted a grey cat" in source.text
    source.click()
    wait(driver, lambda d: text_of(d, "inspected-id") == cat_episode["id"])
    assert text_of(driver, "inspected-content") == cat_episode["content"]
    # looking is not use: the page's searches leave strength and last use as they were
    r = httpx.get(f"{server.url}/v1/memories/{note_id}", params={"user_id": "ana"},
                  headers={"Authorization": f"Bearer {server.tokens['acme']}"}, timeout=10).json()
    assert r["last_access"] is None


def test_context_block_fits_its_budget_and_cites_its_lines(server, browser):
    driver = browser
    connect(driver, server, "acme")
    wait(driver, EC.visibility_of_element_located((By.ID, "workspace")))
    driver.find_element(By.CSS_SELECTOR, '#tabs button[data-tab="context"]').click()
    budget = driver.find_element(By.ID, "budget")
    budget.clear()
    budget.send_keys("40")
    driver.find_element(By.ID, "context-query").send_keys("Where does Ana live now?")
    driver.find_element(By.CSS_SELECTOR, "#context-form button").click()
    wait(driver, lambda d: d.find_element(By.ID, "context-text").text.strip())
    block = text_of(driver, "context-text")
    assert "Lisbon" in block
    assert len(block.split()) <= 40
    meta = text_of(driver, "context-meta")
    assert meta.endswith("of 40 tokens"), meta
    links = driver.find_elements(By.CSS_SELECTOR, "#context-lines a.ref")
    assert links and all(link.get_attribute("data-id") for link in links)
    first = links[0].get_attribute("data-id")
    links[0].click()
    wait(driver, lambda d: text_of(d, "inspected-id") == first)


def test_delete_from_the_inspector_erases_the_memory(server, browser):
    driver = browser
    connect(driver, server, "acme")
    hostile = next(e for e in server.ana["episodes"] if e["content"] == HOSTILE)
    row = f'#browse-rows tr[data-id="{hostile["id"]}"]'
    wait(driver, EC.element_to_be_clickable((By.CSS_SELECTOR, row))).click()
    wait(driver, lambda d: text_of(d, "inspected-id") == hostile["id"])
    driver.find_element(By.ID, "delete").click()
    alert = wait(driver, EC.alert_is_present())
    assert hostile["id"] in alert.text
    alert.accept()
    wait(driver, EC.presence_of_element_located((By.ID, "deleted")))
    wait(driver, lambda d: not d.find_elements(By.CSS_SELECTOR, row))
    r = httpx.get(f"{server.url}/v1/memories/{hostile['id']}", params={"user_id": "ana"},
                  headers={"Authorization": f"Bearer {server.tokens['acme']}"}, timeout=10)
    assert r.status_code == 404
    assert "episodes 2" in text_of(driver, "stats")
    shot = Path(os.environ.get("MEMSTRATA_SCREENSHOT_DIR", server.log_path.parent)) / "webpage.png"
    try:
        driver.save_screenshot(str(shot))  # for a person to look at; not asserted on
    except TimeoutException:
        pass
