"""jno report in a real browser: Debian's headless Chromium, driven by selenium through
chromedriver, opens reports of real short runs from file:// with the network switched off.

Checked: the console has no error; no request other than the file itself is made; every chart
element is drawn and shows data (pixels of its series' colours, or a many-coloured heatmap); moving
a slider (with the keyboard, as a person would) changes the heatmap; two runs are overlaid with
a legend. Screenshots are saved (their paths are printed; JNO_REPORT_SCREENSHOTS=DIR copies them
there). Skips, saying why, where Chromium or chromedriver is missing or cannot start (.ci/run
installs them on CI).
"""

from __future__ import annotations

import io
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")


def _driver():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.options import Options
        from selenium.webdriver.chrome.service import Service
    except ImportError as exc:
        pytest.skip(f"selenium is not installed ({exc}); pip install -e '.[test]'")
    browser = next((shutil.which(b) for b in CHROMIUM if shutil.which(b)), None)
    driver_bin = shutil.which("chromedriver")
    if browser is None or driver_bin is None:
        pytest.skip("headless Chromium is not installed (need the Debian packages chromium and chromium-driver: "
                    "apt-get install chromium chromium-driver; .ci/run installs them)")
    opts = Options()
    opts.binary_location = browser
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
              "--window-size=1400,1000", "--force-device-scale-factor=1",
              "--host-resolver-rules=MAP * ~NOTFOUND"):  # no name resolves: nothing remote can load
        opts.add_argument(a)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    try:
        d = webdriver.Chrome(options=opts, service=Service(driver_bin))
    except Exception as exc:  # noqa: BLE001 - the reason is printed in the skip
        pytest.skip(f"headless Chromium could not start: {type(exc).__name__}: {str(exc).strip()[:400]}")
    d.execute_cdp_cmd("Network.enable", {})
    d.execute_cdp_cmd("Network.emulateNetworkConditions",
                      {"offline": True, "latency": 0, "downloadThroughput": 0, "uploadThroughput": 0})
    return d


@pytest.fixture(scope="module")
def browser():
    d = _driver()
    yield d
    d.quit()


def _train(root: Path, name: str, lr: float) -> Path:
    """A real short run: the spec's 1-D Poisson, 300 epochs, five trackers, csv sink."""
    import foundax
    import jax
    import optax

    import jno

    d = jno.setup("report_test.py", name=name, root=root, sinks=["csv"])
    domain = jno.domain.line(mesh_size=0.1)
    x, _ = domain.variable("interior")
    xb, _ = domain.variable("boundary")
    net = jno.nn.wrap(foundax.mlp(in_features=1, hidden_dims=8, num_layers=2, key=jax.random.PRNGKey(0))
                      ).optimizer(optax.adam(lr))
    u, ub = net(x), net(xb)
    pde = -u.d2(x) - jno.np.sin(jno.np.pi * x)
    crux = jno.core([pde.mse, ub.mse])
    crux.solve(300, callbacks=[
        jno.callbacks.gradient_norms(interval=25),
        jno.callbacks.cos_similarity(interval=25),
        jno.callbacks.residual_stats(interval=25),
        jno.callbacks.loss_landscape(interval=50, n_grid=7, alpha_range=0.5),
        jno.callbacks.ntk_spectrum(u.grad(net), n_points=8, top_k=3, interval=100),
    ])
    jno.finish()
    return Path(d)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("report_runs")
    return _train(root, "a", 1e-3), _train(root, "b", 3e-3)


def _open(d, path: Path) -> dict:
    d.get_log("browser")
    d.get_log("performance")
    d.set_window_size(1400, 1000)
    d.get(path.as_uri())
    t0 = time.time()
    while not d.execute_script("return !!(window.jnoReport && window.jnoReport.ready)"):
        assert time.time() - t0 < 60, "the report did not finish drawing within 60 s"
        time.sleep(0.2)
    state = d.execute_script("return window.jnoReport")
    height = d.execute_script("return document.documentElement.scrollHeight")
    d.set_window_size(1400, height + 40)
    time.sleep(0.8)  # let the resized page repaint
    return state


def _console_errors(d) -> list:
    return [e for e in d.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


def _requests(d) -> list[str]:
    import json

    urls = []
    for e in d.get_log("performance"):
        msg = json.loads(e["message"])["message"]
        if msg.get("method") == "Network.requestWillBeSent":
            urls.append(msg["params"]["request"]["url"])
    return urls


def _screenshot(d, name: str, tmp: Path):
    from PIL import Image

    png = d.get_screenshot_as_png()
    out = tmp / f"{name}.png"
    out.write_bytes(png)
    if os.environ.get("JNO_REPORT_SCREENSHOTS"):
        dest = Path(os.environ["JNO_REPORT_SCREENSHOTS"])
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(out, dest / out.name)
    print(f"screenshot: {out}")
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int16)


def _crop(img, rect):
    x, y, w, h = (int(round(rect[k])) for k in ("x", "y", "width", "height"))
    return img[y:y + h, x:x + w]


def _has_color(crop, hex_color: str, tol: int = 40, min_pixels: int = 15) -> bool:
    rgb = np.array([int(hex_color[i:i + 2], 16) for i in (1, 3, 5)], dtype=np.int16)
    close = np.abs(crop - rgb).sum(axis=-1) < tol
    return int(close.sum()) >= min_pixels


def _rects(d) -> dict:
    return d.execute_script("""
        const out = {};
        for (const e of document.querySelectorAll('.chart')) {
            const r = e.getBoundingClientRect();
            out[e.dataset.chartId] = {x: r.x + window.scrollX, y: r.y + window.scrollY, width: r.width, height: r.height};
        }
        return out;""")


def _check_charts(d, state, img) -> None:
    rects = _rects(d)
    assert len(rects) == len(state["charts"]) > 0
    for c in state["charts"]:
        r = rects[c["id"]]
        assert r["width"] > 100 and r["height"] > 100, f"chart {c['title']} not laid out: {r}"
        crop = _crop(img, r)
        ink = (np.abs(crop - 255).sum(axis=-1) > 60).mean()
        assert ink > 0.02, f"chart {c['title']} looks empty ({ink:.3f} of its pixels drawn)"
        if c["kind"] == "heatmap":
            colors = {tuple(p) for p in crop.reshape(-1, 3)[::7]}
            assert len(colors) > 20, f"heatmap {c['title']} shows {len(colors)} colours"
        else:
            missing = [col for col in c["colors"] if not _has_color(crop, col)]
            assert not missing, f"chart {c['title']}: no pixels of its series colour(s) {missing}"


def test_report_of_a_run_in_chromium(browser, runs, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from jno_core.report import write_report

    res = write_report([runs[0]], tmp_path / "one.html")
    state = _open(browser, res.path)
    assert state["errors"] == []
    assert _console_errors(browser) == []
    urls = _requests(browser)
    assert urls and all(u.startswith(("file:", "data:", "blob:")) for u in urls), urls
    kinds = {c["kind"] for c in state["charts"]}
    assert {"lines", "heatmap", "histogram"} <= kinds
    titles = {c["title"] for c in state["charts"]}
    assert {"loss/*", "explainability/cos_sim_matrix", "explainability/loss_landscape"} <= titles
    img = _screenshot(browser, "report_one_run", tmp_path)
    _check_charts(browser, state, img)
    assert browser.find_elements(By.CSS_SELECTOR, "table.data")  # timing, runs, versions
    # moving the loss landscape's slider (keyboard: Home = first step) changes the heatmap
    heat = next(c for c in state["charts"] if c["title"] == "explainability/loss_landscape")
    box = browser.find_element(By.CSS_SELECTOR, f'.chart[data-chart-id="{heat["id"]}"]')
    slider = box.find_element(By.XPATH, "following-sibling::div[@class='slider-row']/input")
    label = box.find_element(By.XPATH, "following-sibling::div[@class='slider-row']/span")
    before_label = label.text
    rect = _rects(browser)[heat["id"]]
    before = _crop(img, rect)
    slider.send_keys(Keys.HOME)
    time.sleep(0.8)
    after = _crop(_screenshot(browser, "report_one_run_slider_moved", tmp_path), rect)
    assert label.text != before_label and label.text.startswith("step 0 ")
    changed = (np.abs(after - before).sum(axis=-1) > 30).mean()
    assert changed > 0.05, f"moving the slider changed only {changed:.3f} of the heatmap's pixels"
    assert _console_errors(browser) == []


def test_two_runs_overlaid_in_chromium(browser, runs, tmp_path):
    from selenium.webdriver.common.by import By

    from jno_core.report import write_report

    res = write_report(list(runs), tmp_path / "two.html")
    state = _open(browser, res.path)
    assert state["errors"] == [] and _console_errors(browser) == []
    assert all(u.startswith(("file:", "data:", "blob:")) for u in _requests(browser))
    legend = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "header .runs .run")]
    assert legend == ["a", "b"]
    img = _screenshot(browser, "report_two_runs", tmp_path)
    _check_charts(browser, state, img)
    loss = next(c for c in state["charts"] if c["title"] == "loss/*")
    assert len(set(loss["colors"])) == 2  # one colour per run, both drawn (checked above)


def test_sweep_in_chromium(browser, tmp_path):
    from selenium.webdriver.common.by import By

    from helpers_report import write_sweep
    from jno_core.report import write_report

    res = write_report([write_sweep(tmp_path, "minimize")])
    state = _open(browser, res.path)
    assert state["errors"] == [] and _console_errors(browser) == []
    rows = browser.find_elements(By.CSS_SELECTOR, "#sec-sweeps table.data tbody tr")
    assert [r.find_elements(By.TAG_NAME, "td")[1].text for r in rows] == [
        "trial-0001", "trial-0002", "trial-0000", "trial-0003"]
    header = browser.find_element(By.CSS_SELECTOR, "#sec-sweeps table.data th[data-col='1']")
    header.click()  # sort by trial name
    rows = browser.find_elements(By.CSS_SELECTOR, "#sec-sweeps table.data tbody tr")
    assert rows[0].find_elements(By.TAG_NAME, "td")[1].text == "trial-0000"
    img = _screenshot(browser, "report_sweep", tmp_path)
    _check_charts(browser, state, img)
    assert {c["kind"] for c in state["charts"]} >= {"scatter", "lines"}
