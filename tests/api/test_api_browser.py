"""The web page in headless Chromium (Debian's, driven by Playwright; nothing downloaded):
load it, search by tags and by free text, upload a clip and see results, open an artist."""

from __future__ import annotations

import os
import shutil

import pytest

CHROMIUM = os.environ.get("RECSYS_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def page(live_url):
    if not shutil.which(CHROMIUM) and not os.path.exists(CHROMIUM):
        pytest.skip(f"no Chromium at {CHROMIUM} (make test installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.errors = []
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        page.goto(live_url + "/")
        yield page
        browser.close()


def test_page_loads_tags_stats_and_map(page, ingested):
    page.wait_for_selector("#tag-chips .chip")
    assert f"{ingested.catalog.count_tracks()} tracks" in page.text_content("#stats")
    page.wait_for_selector("#singer-map .point")
    ids, _ = ingested.catalog.artist_vectors("timbre-artist")
    assert page.locator("#singer-map .point").count() == len(ids)
    assert page.errors == []


def test_tag_search_shows_results(page):
    chip = page.locator("#tag-chips .chip").first  # the most used tag
    chip.click()
    assert "and" in chip.get_attribute("class")
    page.click("#tag-search-btn")
    page.wait_for_selector("#results .result")
    assert page.locator("#results .result").count() > 0
    chip.click()
    chip.click()  # back to neutral: and -> not -> none
    assert chip.get_attribute("aria-pressed") == "false"


def test_free_text_shows_what_it_understood(page):
    page.fill("#text-query", "a song with a woman singing")
    page.click("#tag-search-btn")
    page.wait_for_selector("#understood:not([hidden])")
    assert "Understood as" in page.text_content("#understood")
    page.fill("#text-query", "")


def test_upload_a_clip_and_see_results(page, ingested, tmp_path, clip_wav, track_ids):
    clip = tmp_path / "clip.wav"
    clip.write_bytes(clip_wav)
    page.set_input_files("#clip-file", str(clip))
    assert page.text_content("#clip-name") == "clip.wav"
    page.select_option("#clip-mode", "example:timbre")
    page.evaluate("document.querySelector('#results').replaceChildren()")
    page.click("#clip-search-btn")
    page.wait_for_selector("#results .result", timeout=120_000)
    ids = [int(x) for x in page.eval_on_selector_all("#results .result",
                                                     "els => els.map(e => e.dataset.id)")]
    assert ids and set(ids) <= set(track_ids)
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    assert page.errors == []


def test_open_an_artist_and_play(page):
    page.locator("#results .result .artist a").first.click()
    page.wait_for_selector("#artist-view:not([hidden]) #artist-body h3")
    assert page.locator("#artist-body .result").count() > 0
    page.locator("#artist-body .play").first.click()
    page.wait_for_function("document.querySelector('#player').src.includes('/audio')")
    assert "from" in page.text_content("#now-playing")
    assert page.errors == []
