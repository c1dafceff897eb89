"""End-to-end tests of app.py as users reach it: `python app.py` on localhost with tiny checkpoints, driven through
gradio_client (the documented API) and through a real browser (Playwright + Debian's Chromium)."""

import base64
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from app_fixtures import REPO_ROOT, make_tiny_checkpoints
from conftest import exif_rotated_jpeg, photo, png_claiming, rgba_png
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image, ImageOps

from vitdeblur.examples import list_examples

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = REPO_ROOT / "test-artifacts"  # screenshots for people to look at (git-ignored)
EXAMPLE = REPO_ROOT / "examples" / "chelsea-motion"  # the smallest example with ground truth: fast on CPU
STARTUP_TIMEOUT_S = 180  # importing torch and gradio is slow on a busy 2-core machine
REQUEST_TIMEOUT_S = 180
UPLOAD_LIMIT_MB = 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`python app.py` in a subprocess, configured only through environment variables, as a user would run it."""
    tmp = tmp_path_factory.mktemp("app")
    checkpoints = make_tiny_checkpoints(tmp / "checkpoints")
    (tmp / "tmp").mkdir()
    port = free_port()
    env = {**os.environ, "VITDEBLUR_ADAM": str(checkpoints / "adam"), "VITDEBLUR_SGD": str(checkpoints / "sgd"),
           "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False",
           "HF_HUB_OFFLINE": "1", "TMPDIR": str(tmp / "tmp"), "PYTHONUNBUFFERED": "1",
           "VITDEBLUR_MAX_FILE_MB": str(UPLOAD_LIMIT_MB)}
    log_path = tmp / "server.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen([sys.executable, "app.py"], cwd=REPO_ROOT, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            if process.poll() is not None:
                pytest.fail(f"app.py exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=5) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"app.py did not answer within {STARTUP_TIMEOUT_S} s:\n{log_path.read_text()[-3000:]}")
            time.sleep(1)
        yield url
        # The bar: bad uploads (before and after an example click) leave no traceback in the server log
        assert "Traceback" not in log_path.read_text(), log_path.read_text()[-3000:]
    finally:
        os.killpg(process.pid, signal.SIGTERM)  # the session started above: app.py and nothing else
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


@pytest.fixture(scope="module")
def client(server):
    return Client(server, verbose=False)


def deblur(client, path, variant):
    """The documented call: only image and variant, everything else at its default."""
    return client.submit(handle_file(str(path)), variant, api_name="/deblur").result(timeout=REQUEST_TIMEOUT_S)


def pixels(path) -> np.ndarray:
    return np.asarray(Image.open(path))


def test_the_pages_readme_link_serves_the_readme(server):
    page = httpx.get(server, timeout=30).text
    assert "Project README" in page
    readme = httpx.get(f"{server.rstrip('/')}/gradio_api/file={REPO_ROOT / 'README.md'}", timeout=30)
    assert readme.status_code == 200 and "# ViTDeblur" in readme.text


def test_api_signature_is_image_and_variant(client):
    info = client.view_api(print_info=False, return_format="dict")["named_endpoints"]["/deblur"]
    names = [p["parameter_name"] for p in info["parameters"]]
    assert names[:2] == ["image", "variant"]
    assert all(p["parameter_has_default"] for p in info["parameters"][1:])
    assert all(not r["label"].startswith("value_") for r in info["returns"]), info["returns"]  # every output named


def test_example_with_ground_truth_gives_panels_and_metrics(client):
    blurred, adam, sgd, truth, slider_adam, slider_sgd, report, downloads, details = deblur(
        client, EXAMPLE / "blurred.png", "both")
    # Every panel comes back as PNG, pixel for pixel: the input and ground truth exactly as the example files
    assert np.array_equal(pixels(blurred), pixels(EXAMPLE / "blurred.png"))
    assert np.array_equal(pixels(truth), pixels(EXAMPLE / "sharp.png"))
    for path in (blurred, adam, sgd, truth):
        assert Image.open(path).format == "PNG" and Image.open(path).size == (451, 300)
    assert not np.array_equal(pixels(adam), pixels(blurred)) and not np.array_equal(pixels(adam), pixels(sgd))
    assert [Path(p).name for p in slider_adam] == [Path(blurred).name, Path(adam).name]
    assert Path(slider_sgd[1]).name == Path(sgd).name
    assert sorted(Path(p).name for p in downloads) == ["chelsea-motion_deblurred_adam.png",
                                                       "chelsea-motion_deblurred_sgd.png"]
    assert [row["image"] for row in details["metrics"]] == ["blurred input", "deblurred (adam)", "deblurred (sgd)"]
    assert details["metrics"][0]["psnr"] == pytest.approx(29.18, abs=0.01)  # examples/README.md lists 29.18 dB
    assert "| SGD + MSE (sgd) |" in report and "(best)" in report and "CPU" in report


def test_blur_your_own_photo_gives_four_panels_and_metrics(client):
    sharp = EXAMPLE / "sharp.png"
    blurred, adam, sgd, truth, slider_adam, slider_sgd, report, downloads, details = client.submit(
        handle_file(str(sharp)), "both", 9, 30, 5, 1.5, 2, 7, api_name="/blur_and_deblur").result(
        timeout=REQUEST_TIMEOUT_S)
    assert np.array_equal(pixels(truth), pixels(sharp))  # the sharp photo is the ground truth
    assert not np.array_equal(pixels(blurred), pixels(sharp))
    assert all(Image.open(path).size == (451, 300) for path in (blurred, adam, sgd, truth))
    assert [row["image"] for row in details["metrics"]] == ["blurred input", "deblurred (adam)", "deblurred (sgd)"]
    assert "motion 9 px at 30°" in report and "| Adam + L1 (adam) |" in report
    assert len(downloads) == 2


def test_exif_rotated_jpeg_comes_back_upright(client, tmp_path):
    photo = exif_rotated_jpeg(tmp_path / "phone.jpg", width=120, height=72)
    blurred, adam, sgd, truth, _, slider_sgd, report, downloads, details = deblur(client, photo, "adam")
    upright = np.asarray(ImageOps.exif_transpose(Image.open(photo)))
    assert upright.shape[:2] == (120, 72)
    assert np.array_equal(pixels(blurred), upright)
    assert Image.open(adam).size == (72, 120)
    assert sgd is None and truth is None and slider_sgd is None
    assert details["metrics"] == [] and "No ground truth" in report
    assert len(downloads) == 1


def test_rgba_png_keeps_size_and_alpha(client, tmp_path):
    logo = rgba_png(tmp_path / "logo.png", width=96, height=64)
    blurred, adam, sgd, *_ = deblur(client, logo, "sgd")
    assert adam is None
    for path in (blurred, sgd):
        assert Image.open(path).mode == "RGBA" and Image.open(path).size == (96, 64)
        assert np.array_equal(pixels(path)[..., 3], pixels(logo)[..., 3])


@pytest.mark.parametrize("content, message", [
    (b"this is a text file, not a picture\n", "not an image"),
    (png_claiming(20000, 9000), "megapixels"),
])
def test_bad_upload_gets_a_message_and_the_app_keeps_serving(client, tmp_path, content, message):
    bad = tmp_path / "holiday.png"
    bad.write_bytes(content)
    with pytest.raises(AppError, match=message) as error:
        deblur(client, bad, "both")
    assert "Traceback" not in str(error.value)
    blurred, adam, *_ = deblur(client, rgba_png(tmp_path / "next.png"), "adam")
    assert Image.open(adam).size == (96, 64)


@pytest.mark.parametrize("settings, message", [
    (("both", 999, 0, 0, 0, 0, 0), "Motion length \\(px\\): Value 999 is greater than maximum value 64"),
    (("nope", 15, 0, 0, 0, 0, 0), "Variant: .*'nope'.* not in the list of choices"),
])
def test_api_values_out_of_range_are_refused_naming_the_setting(client, tmp_path, settings, message):
    # and without a traceback in the server log (the server fixture checks it at the end)
    sharp = tmp_path / "sharp.png"
    Image.fromarray(photo("coffee", (96, 64))).save(sharp)
    with pytest.raises(AppError, match=message):
        client.predict(handle_file(str(sharp)), *settings, api_name="/blur_and_deblur")


def test_upload_over_the_limit_is_refused(server):
    too_big = os.urandom((UPLOAD_LIMIT_MB + 1) * 1_000_000)
    response = httpx.post(server + "gradio_api/upload", files={"files": ("big.png", too_big, "image/png")},
                          timeout=REQUEST_TIMEOUT_S)
    assert response.status_code == 413 and "File size exceeded" in response.text


def call_with_data_url(server, url: str) -> list:
    """The REST API with the image inline as base64 (how the API's url/data form sends it)."""
    api = server + "gradio_api/call/deblur"
    image = {"url": url, "meta": {"_type": "gradio.FileData"}}
    event_id = httpx.post(api, json={"data": [image, "adam", 1.5]}, timeout=30).json()["event_id"]
    stream = httpx.get(f"{api}/{event_id}", timeout=REQUEST_TIMEOUT_S).text
    kind, data = [line.split(": ", 1)[1] for line in stream.strip().splitlines()[-2:]]
    return kind, json.loads(data)


def test_base64_image_keeps_16_bit_grayscale(server, tmp_path):
    ramp = np.tile(np.linspace(1000, 60000, 96).astype(np.uint16), (64, 1))
    Image.fromarray(ramp).save(tmp_path / "gray16.png")
    url = "data:image/png;base64," + base64.b64encode((tmp_path / "gray16.png").read_bytes()).decode()
    kind, outputs = call_with_data_url(server, url)
    assert kind == "complete", outputs
    blurred = Image.open(io.BytesIO(httpx.get(outputs[0]["url"], timeout=30).content))
    assert blurred.mode == "L" and np.abs(np.asarray(blurred, np.float32) - ramp / 257).max() <= 0.5 + 1e-3
    kind, message = call_with_data_url(server, url[:200])  # cut short
    assert kind == "error" and "not valid base64" in str(message)


def test_twenty_concurrent_calls_all_get_through_the_queue(server, tmp_path):
    # Independent REST calls, as 20 users would make them (one shared gradio_client stream can itself cancel jobs).
    photo = rgba_png(tmp_path / "logo.png", width=64, height=48)
    url = "data:image/png;base64," + base64.b64encode(photo.read_bytes()).decode()
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(lambda _: call_with_data_url(server, url), range(20)))
    assert [kind for kind, _ in results] == ["complete"] * 20
    adam = [outputs[1]["url"] for _, outputs in results]
    assert all(Image.open(io.BytesIO(httpx.get(u, timeout=30).content)).size == (64, 48) for u in adam)


EXAMPLE_INDEX = [e.name for e in list_examples()].index(EXAMPLE.name)  # the thumbnails are in this order


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing; CI must install it (apt-get install -y chromium)")
        pytest.skip(f"{CHROMIUM} is not installed")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def open_app(browser, server, width, height):
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(REQUEST_TIMEOUT_S * 1000)
    page.goto(server)
    page.locator("#run").wait_for()
    return page


def click_example(page):
    """Click the example's thumbnail: it runs (or loads from the lazy cache) without pressing Deblur."""
    page.locator("#examples img").nth(EXAMPLE_INDEX).click()
    page.locator("#panel-truth img").wait_for()
    page.locator("#loupe img").first.wait_for()


def test_browser_example_click_runs_and_shows_the_loupe(server, browser):
    page = open_app(browser, server, 1440, 900)
    assert page.locator("#empty-state").is_visible() and not page.locator("#panel-blurred").is_visible()
    page.screenshot(path=str(ARTIFACTS / "desktop-empty.png"), full_page=True)
    click_example(page)
    page.locator("#report table").wait_for()
    for panel in ("panel-blurred", "panel-adam", "panel-sgd", "panel-truth"):
        img = page.locator(f"#{panel} img")
        loaded = img.evaluate("img => img.complete && img.naturalWidth + 'x' + img.naturalHeight")
        assert loaded == "451x300", f"{panel}: {loaded}"
        assert ".png" in img.get_attribute("src")
    assert "SGD + MSE (sgd)" in page.locator("#report").inner_text()
    assert page.locator("#loupe img").count() == 4  # blurred | adam | sgd | ground truth
    assert "enlarged 2x" in page.locator("#loupe-caption").inner_text()
    assert page.locator("#downloads").inner_text().count("_deblurred_") == 2
    page.screenshot(path=str(ARTIFACTS / "desktop-example.png"), full_page=True)
    # A click on a panel moves the loupe there
    frame = page.locator("#panel-blurred img").bounding_box()  # the right edge, half-way down (inside the picture)
    page.locator("#panel-blurred img").click(position={"x": frame["width"] - 2, "y": frame["height"] / 2})
    # the 128 px region around that point, moved inside the image
    page.wait_for_function("() => document.querySelector('#loupe-caption').innerText.includes('at (323, ')")
    page.get_by_role("tab", name="What changed").click()
    page.locator("#heatmaps img").nth(1).wait_for()
    page.screenshot(path=str(ARTIFACTS / "desktop-heatmaps.png"), full_page=True)
    page.close()


def test_browser_example_without_ground_truth_shows_its_results(server, browser):
    """The real camera-shake example has no ground truth: the click still shows both variants (through the example
    cache, which once could not read back an empty image) and no ground-truth panel."""
    index = next(i for i, e in enumerate(list_examples()) if e.sharp is None)
    page = open_app(browser, server, 1440, 900)
    for _ in range(2):  # the first click computes and caches, the second reads the cache
        page.locator("#examples img").nth(index).click()
        page.locator("#panel-sgd img").wait_for()
        assert "No ground truth for this image" in page.locator("#report").inner_text()
        assert not page.locator("#panel-truth img").is_visible()
        assert page.locator("#downloads").inner_text().count("_deblurred_") == 2
        page.reload()
        page.locator("#run").wait_for()
    page.close()


def test_browser_bad_upload_after_an_example_is_refused_at_once_and_emptied(server, browser, tmp_path):
    page = open_app(browser, server, 1440, 900)
    click_example(page)
    bad = tmp_path / "holiday.jpg"
    bad.write_bytes(b"this is a text file, not a picture\n")
    page.locator("#input-image input[type=file]").set_input_files(str(bad))
    page.get_by_text("holiday.jpg: not an image").wait_for()  # said on upload, before any Run
    page.locator("#empty-state").wait_for()  # the old results went away with the new input
    assert not page.locator("#panel-adam").is_visible()
    page.wait_for_function("() => !document.querySelector('#input-image img')")  # no broken preview stays
    page.screenshot(path=str(ARTIFACTS / "desktop-bad-upload.png"), full_page=True)
    page.close()


def test_browser_tiff_upload_shows_its_photo(server, browser, tmp_path):
    """Browsers cannot show a TIFF: a PNG of the same pixels stands in for it, so the preview is the photo."""
    page = open_app(browser, server, 1440, 900)
    Image.fromarray(photo("coffee", (120, 90))).save(tmp_path / "scan.tif")
    page.locator("#input-image input[type=file]").set_input_files(str(tmp_path / "scan.tif"))
    page.wait_for_function("() => { const img = document.querySelector('#input-image img');"
                           " return img && img.complete && img.naturalWidth === 120; }")
    page.close()


def test_browser_blur_setting_names_stay_on_one_line(server, browser):
    for width in (1180, 1440):  # below ~1280 px the number boxes move under the names instead of breaking them
        page = open_app(browser, server, width, 900)
        page.get_by_role("tab", name="Blur your own sharp photo").click()
        names = page.locator(".blur-setting label [data-testid=block-info]")
        names.first.wait_for()
        lines = names.evaluate_all("spans => spans.map(s => [s.innerText, s.getBoundingClientRect().height "
                                   "/ parseFloat(getComputedStyle(s).lineHeight)])")
        assert len(lines) == 5 and all(count < 1.5 for _, count in lines), f"{width} px: {lines}"
        page.close()


def test_browser_blur_your_own_photo(server, browser):
    page = open_app(browser, server, 1440, 900)
    page.get_by_role("tab", name="Blur your own sharp photo").click()
    # on a desktop the blur settings' names fit on one line beside their number boxes (they took two or three)
    lines = page.locator(".blur-setting [data-testid=block-info]").evaluate_all(
        "names => names.map(n => n.getBoundingClientRect().height / parseFloat(getComputedStyle(n).fontSize))")
    assert len(lines) == 5 and max(lines) < 2, lines
    page.locator("#sharp-examples img").nth(EXAMPLE_INDEX).click()
    page.locator("#sharp-image img").wait_for()
    page.locator("#blur-run").click()
    page.locator("#panel-truth img").wait_for()
    for panel in ("panel-blurred", "panel-adam", "panel-sgd", "panel-truth"):
        assert page.locator(f"#{panel} img").is_visible()
    page.locator("#report table").wait_for()
    assert "| " not in page.locator("#report").inner_text()  # a rendered table, not Markdown source
    assert "blurred here: motion 15 px" in page.locator("#report").inner_text()
    page.screenshot(path=str(ARTIFACTS / "desktop-blur-your-own.png"), full_page=True)
    # back on the first tab, the blur tab's results are gone (they would look like that tab's)
    page.get_by_role("tab", name="Deblur a photo").click()
    page.locator("#empty-state").wait_for()
    assert not page.locator("#panel-blurred").is_visible()
    page.close()


def test_browser_phone_run_brings_the_results_into_view_and_a_panorama_in_full_width_panels(server, browser,
                                                                                            tmp_path):
    """On a phone the results are a screen below the Deblur button: a run brings that place into view (its progress
    shows there), and a panorama's panels take the whole width instead of 20 px high strips; the next photo's do not."""
    panorama = tmp_path / "panorama.png"
    Image.fromarray(np.tile(photo("coffee", (400, 300))[50:250], (1, 3, 1))).save(panorama)  # 1200x200
    page = open_app(browser, server, 390, 844)
    page.locator("#input-image input[type=file]").set_input_files(str(panorama))
    page.locator("#input-image img").wait_for()
    page.locator("#run").click()
    page.locator("#panel-sgd img").wait_for()
    top = page.locator("#results").evaluate("e => e.getBoundingClientRect().top")
    assert 0 <= top < 844, f"the results begin {top:.0f} px down the screen"
    for panel in ("panel-blurred", "panel-adam", "panel-sgd"):
        frame = page.locator(f"#{panel} img").bounding_box()
        assert frame["width"] > 300 and frame["height"] > 45, f"{panel}: {frame}"
    page.screenshot(path=str(ARTIFACTS / "phone-panorama.png"), full_page=True)
    assert "panorama" in page.locator("#results").get_attribute("class")
    page.locator("#examples img").nth(EXAMPLE_INDEX).click()  # an ordinary photo: two panels per row again
    page.wait_for_function("() => !document.querySelector('#results').classList.contains('panorama')")
    page.locator("#panel-truth img").wait_for()
    assert page.locator("#panel-adam img").bounding_box()["width"] < 200
    page.close()


def contrast_on_white(css_colour: str) -> float:
    """The WCAG contrast ratio of a computed CSS colour (rgb(), rgba() or color(srgb ...)) drawn on white."""
    inner = css_colour[css_colour.index("(") + 1:-1]
    scale = 1.0 if inner.startswith("srgb") else 255.0  # color(srgb r g b / a) has channels in [0, 1]
    r, g, b, *alpha = (float(v) for v in inner.removeprefix("srgb").replace("/", " ").replace(",", " ").split())
    a = alpha[0] if alpha else 1.0
    channels = [a * c / scale + 1 - a for c in (r, g, b)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 1.05 / (0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2] + 0.05)


def test_browser_phone_shows_the_first_result_within_two_screens(server, browser):
    page = open_app(browser, server, 390, 844)
    page.screenshot(path=str(ARTIFACTS / "phone-empty.png"), full_page=True)
    # the controls' explanations are readable (WCAG AA: 4.5:1)
    colours = page.locator(".info-text").evaluate_all("es => es.map(e => getComputedStyle(e).color)")
    assert colours and min(contrast_on_white(c) for c in colours) >= 4.5, colours
    click_example(page)
    bottom = page.locator("#panel-adam img").evaluate("img => img.getBoundingClientRect().bottom + window.scrollY")
    assert bottom <= 2 * 844, f"the first result ends {bottom:.0f} px down the page"
    # numbers and words in the metrics table stay whole (the table scrolls sideways instead)
    assert page.locator("#report td").count() > 0 and page.locator("#downloads .stem").count() == 2
    broken = page.locator("#report td, #report th").evaluate_all(
        "cells => cells.filter(c => c.innerText.trim() && c.getClientRects().length"
        " && [...c.childNodes].some(n => { const r = document.createRange(); r.selectNodeContents(n);"
        " const lines = new Set([...r.getClientRects()].map(b => Math.round(b.top))); return lines.size > 1; }))"
        ".map(c => c.innerText)")
    assert not broken, f"wrapped table cells on a phone: {broken}"
    # ...and shows that it does: a shadow at the edge with columns behind it (Gradio's CSS processing once dropped
    # the `background` shorthand that drew it)
    overflow, layers = page.locator("#report table").evaluate(
        "t => [t.scrollWidth > t.clientWidth, getComputedStyle(t).backgroundImage]")
    assert overflow and layers.count("radial-gradient") == 2, layers
    # all four loupe crops fit the screen's width, and their frame is no taller than they are
    rights = page.locator("#loupe img").evaluate_all("imgs => imgs.map(i => i.getBoundingClientRect().right)")
    assert len(rights) == 4 and max(rights) <= 390, rights
    frame, crops = (page.locator(f"#loupe {part}").evaluate("e => e.getBoundingClientRect().height")
                    for part in (".grid-wrap", ".grid-container"))
    assert frame <= crops + 40, f"a {frame:.0f} px frame around {crops:.0f} px of crops"
    cut = page.locator("#downloads .stem").evaluate_all("s => s.filter(e => e.scrollWidth > e.clientWidth).length")
    assert cut == 0, "download names cut short"
    # every result view has its own visible tab (none hidden in an overflow menu)
    tabs = page.locator("#views [role=tab]").evaluate_all(
        "tabs => tabs.filter(t => t.getClientRects().length && t.getBoundingClientRect().right <= 390)"
        ".map(t => t.innerText)")
    assert tabs == ["Detail loupe", "What changed", "Before / after slider"], tabs
    # each result panel's name in full, clear of its buttons ("Adam + L1 (adam)" was cut to "Adam + L1 (adar")
    for panel in ("panel-blurred", "panel-adam", "panel-sgd", "panel-truth"):
        label, buttons = (page.locator(f"#{panel} {part}").bounding_box()
                          for part in ("label[data-testid=block-label]", ".icon-button-wrapper"))
        assert label["x"] + label["width"] <= buttons["x"], f"{panel}: its name runs under its buttons"
    # the read-only download list offers no "remove" buttons
    assert not page.locator("#downloads .label-clear-button").first.is_visible()
    page.screenshot(path=str(ARTIFACTS / "phone-example.png"), full_page=True)
    # the heat maps' captions (each variant's mean change) are shown whole
    page.get_by_role("tab", name="What changed").click()
    captions = page.locator("#heatmaps .caption-label")
    captions.nth(1).wait_for()
    assert all("mean change" in text for text in captions.all_inner_texts())
    hidden = captions.evaluate_all(
        "cs => cs.filter(c => { const r = c.getBoundingClientRect(), box = c.closest('#heatmaps')"
        ".getBoundingClientRect(); return c.scrollWidth > c.clientWidth || r.bottom > box.bottom; }).length")
    assert hidden == 0, "heat-map captions cut short"
    page.screenshot(path=str(ARTIFACTS / "phone-heatmaps.png"), full_page=True)
    page.close()
