"""The web page and the static report in a real headless Chromium, against a real `agiqa serve` (default model).

Two example images (sharp and blurred, whose default quality scores differ) are uploaded with a prompt: the
gallery must show them in the order the Python API's scores give, with the same level words and percentiles, and
the explanation (phrases, worst region, heat-map) must open on click. A score table is opened from the server's
gallery folder, and `agiqa report`'s file is opened from file://. Screenshots go to the test's tmp_path.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pandas as pd
import pytest

from _browser import agiqa_server, chromium, need_browser, wait_for
from agiqa.api import Scorer, load, resolve_card, write_gallery_report
from agiqa.explain import level_of

pytestmark = pytest.mark.slow

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "images"
PROMPT = "a red apple on a table"


@pytest.fixture(scope="module")
def scorer() -> Scorer:
    need_browser()
    return load()


@pytest.fixture(scope="module")
def browser():
    need_browser()
    with chromium() as driver:
        yield driver


@pytest.fixture(scope="module")
def scored(scorer: Scorer) -> pd.DataFrame:
    files = sorted(EXAMPLES.glob("*.jpg"))
    result = scorer.score(files, PROMPT, percentiles=scorer.reference is not None)
    frame = result.to_pandas()
    frame["image"] = [f.name for f in files]
    return frame


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, scored: pd.DataFrame):
    gallery = tmp_path_factory.mktemp("gallery")
    for name in scored["image"]:
        shutil.copy(EXAMPLES / name, gallery / name)
    scored.to_csv(gallery / "examples.csv", index=False)
    with agiqa_server("--gallery-dir", str(gallery)) as url:
        yield url


def _cards(driver) -> list:
    return driver.find_elements("css selector", "#gallery .card")


def _names(driver) -> list[str]:
    return [c.get_attribute("data-name") for c in _cards(driver)]


def _select(driver, element_id: str, value: str) -> None:
    from selenium.webdriver.support.ui import Select

    Select(driver.find_element("id", element_id)).select_by_value(value)


def _expected_order(scored: pd.DataFrame, dim: str, best: bool = True) -> list[str]:
    return scored.sort_values(dim, ascending=not best)["image"].tolist()


def _check_cards(driver, scorer: Scorer, scored: pd.DataFrame, tolerance: float) -> None:
    """Each card shows its score as the Python API gives it (within ``tolerance``), the level word of ``level_of``
    and the percentile of the model's reference, both of the score shown."""
    by_name = scored.set_index("image")
    for card in _cards(driver):
        row = by_name.loc[card.get_attribute("data-name")]
        for spec in scorer.dimensions:
            line = card.find_element("css selector", f'li[data-dim="{spec.name}"]')
            shown = float(line.get_attribute("data-score"))
            assert shown == pytest.approx(row[spec.name], abs=tolerance)
            assert line.find_element("css selector", ".value").text == f"{shown:.2f}"
            assert line.find_element("css selector", ".level").text == level_of(shown, spec)
            pct = line.find_elements("css selector", ".pct")
            if scorer.reference is None:
                assert not pct
                continue
            expected = float(scorer.reference.percentile(spec.name, [shown])[0])
            assert float(line.get_attribute("data-pct")) == pytest.approx(expected, abs=1e-6)
            assert pct[0].text == f"p{math.floor(expected + 0.5)}"


# Scores of the default model differ by up to about 0.01 between two processes (the server's and this one): the
# lite encoder's ImageNet class-name embeddings are computed with dropout on at load time (issue 12 fixes it).
ACROSS_PROCESSES = 0.02


def test_upload_sort_and_explain(browser, server: str, scorer: Scorer, scored: pd.DataFrame, tmp_path: Path) -> None:
    two = scored[scored["image"].isin(["apple_sharp.jpg", "apple_blurred.jpg"])]
    assert two["quality"].nunique() == 2, "the example images should score differently"
    browser.get(f"{server}/")
    wait_for(browser, lambda d: d.find_element("tag name", "body").get_attribute("data-ready") == "true")
    browser.find_element("id", "files").send_keys("\n".join(str(EXAMPLES / n) for n in two["image"]))
    browser.find_element("id", "prompt").send_keys(PROMPT)
    browser.find_element("id", "score-button").click()
    wait_for(browser, lambda d: len(_cards(d)) == 2, what="two scored cards")
    assert _names(browser) == _expected_order(two, "quality")
    _check_cards(browser, scorer, two, ACROSS_PROCESSES)
    _select(browser, "sort-order", "worst")
    assert _names(browser) == _expected_order(two, "quality", best=False)
    _select(browser, "sort-key", "alignment")
    assert _names(browser) == _expected_order(two, "alignment", best=False)
    _select(browser, "sort-order", "best")
    _select(browser, "sort-key", "quality")
    _cards(browser)[0].click()
    heatmap = wait_for(browser, lambda d: d.find_elements("id", "heatmap"), what="the explanation's heat-map")[0]
    assert heatmap.get_attribute("src").startswith("data:image/png;base64,")
    assert browser.execute_script("return arguments[0].naturalWidth", heatmap) > 100
    assert browser.find_elements("css selector", "#phrases li")
    assert browser.find_element("id", "worst-region").text.startswith("Worst region for quality:")
    assert browser.find_element("css selector", "#detail h2").text == _expected_order(two, "quality")[0]
    browser.save_screenshot(str(tmp_path / "page.png"))
    assert (tmp_path / "page.png").stat().st_size > 10_000


def test_open_a_table_from_the_gallery_folder(browser, server: str, scorer: Scorer, scored: pd.DataFrame) -> None:
    browser.get(f"{server}/")
    wait_for(browser, lambda d: d.find_element("tag name", "body").get_attribute("data-ready") == "true")
    assert browser.find_element("id", "table-form").is_displayed()
    _select(browser, "table-select", "examples.csv")
    browser.find_element("id", "open-table").click()
    wait_for(browser, lambda d: len(_cards(d)) == len(scored), what="the table's cards")
    assert _names(browser) == _expected_order(scored, "quality")
    _check_cards(browser, scorer, scored, 1e-6)  # the table's own numbers
    loaded = "return Array.from(document.querySelectorAll('#gallery img')).every(i => i.complete && i.naturalWidth > 0)"
    wait_for(browser, lambda d: d.execute_script(loaded), what="the thumbnails")


def test_report_opens_from_file(browser, scorer: Scorer, scored: pd.DataFrame, tmp_path: Path) -> None:
    scored.assign(image=[str(EXAMPLES / n) for n in scored["image"]]).to_csv(tmp_path / "scores.csv", index=False)
    done = write_gallery_report(tmp_path / "scores.csv", tmp_path / "report.html", resolve_card(scorer.name))
    assert done.items == len(scored) and done.missing_images == 0
    browser.get((tmp_path / "report.html").as_uri())
    wait_for(browser, lambda d: d.find_element("tag name", "body").get_attribute("data-ready") == "true")
    assert not browser.find_element("id", "inputs").is_displayed()  # no upload in a static report
    full = scored.assign(image=[str(EXAMPLES / n) for n in scored["image"]])
    assert _names(browser) == _expected_order(full, "quality")
    _check_cards(browser, scorer, full, 1e-6)
    _select(browser, "sort-order", "worst")
    assert _names(browser) == _expected_order(full, "quality", best=False)
    _cards(browser)[0].click()
    wait_for(browser, lambda d: d.find_element("id", "detail").is_displayed(), what="the detail panel")
    assert browser.find_element("css selector", "#detail h2").text == _expected_order(full, "quality", False)[0]
    assert browser.find_element("id", "detail-image").get_attribute("src").startswith("data:image/jpeg;base64,")
    assert "null" not in browser.find_element("id", "detail-body").text
    browser.save_screenshot(str(tmp_path / "report.png"))
