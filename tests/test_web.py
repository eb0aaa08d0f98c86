"""The web page in a real browser: Debian's chromium driven by Playwright, against a running service.

One service (``roadnet serve``: the API and its embedded worker, API keys on; started with the service
tests' harness) and one browser serve the browser tests. Every test but the key test starts with the key
already in the page's localStorage; the key test starts without it and types it into the dialog.
Requests to any host but the service are refused and recorded: the page must work with no internet.
Console errors fail a test too, but those a test expects (a refused upload's 422, say).
The first test checks in process, without a browser, that the page and its files are served.
"""

from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Route,
    expect,
    sync_playwright,
)
from service_harness import deployment

from roadnet.settings import Settings
from service.main import create_app

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
API_KEY = "web-test-key"
JOB_TIMEOUT_MS = 90_000


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, tiny_onnx_model: Path) -> Iterator[str]:
    """``roadnet serve`` (the API and its embedded worker) with the tiny model and API keys on, so every
    request of the page must carry the key; yields its URL once ``/healthz`` says it can run jobs."""
    env = {
        "ROADNET_MODEL_PATH": str(tiny_onnx_model),
        "ROADNET_ORT_INTRA_OP_THREADS": "1",
        "ROADNET_API_KEYS": API_KEY,
    }
    with deployment(tmp_path_factory.mktemp("web") / "data", env) as started:
        started.serve()
        started.wait_healthy()
        yield started.url


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail("chromium is not installed: apt-get install -y chromium", pytrace=False)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Session:
    """A fresh browser profile on the page (or another of the service's, ``path``), recording what would
    have gone to the internet."""

    def __init__(
        self,
        browser: Browser,
        service: str,
        *,
        with_key: bool,
        path: str = "",
        viewport: tuple[int, int] = (1280, 800),
        expected_console: tuple[str, ...] = (),
    ) -> None:
        self.context: BrowserContext = browser.new_context(
            viewport={"width": viewport[0], "height": viewport[1]}, accept_downloads=True
        )
        if with_key:
            self.context.add_init_script(f"localStorage.setItem('roadnet.apiKey', {json.dumps(API_KEY)})")
        self.outside: list[str] = []
        self.allowed_outside: tuple[str, ...] = ()  # URL prefixes a test lets the page ask for (then aborted)
        self.errors: list[str] = []
        self.console_errors: list[str] = []
        self.expected_console = expected_console  # texts of console errors the test expects
        own_host = urlsplit(service).netloc
        self.context.route("**/*", self._route(own_host))
        self.page: Page = self.context.new_page()
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("console", self._console)
        self.page.goto(f"{service}/{path}")

    def _route(self, own_host: str) -> Callable[[Route], None]:
        def handle(route: Route) -> None:
            url = route.request.url
            if urlsplit(url).scheme in ("http", "https") and urlsplit(url).netloc != own_host:
                if not url.startswith(self.allowed_outside):
                    self.outside.append(url)
                route.abort()
            else:
                route.continue_()

        return handle

    def _console(self, message: ConsoleMessage) -> None:
        if message.type != "error":
            return
        # A refused request to an allowed outside host (the basemap) is logged as a failed load.
        source = message.location.get("url", "")
        if self.allowed_outside and source.startswith(self.allowed_outside):
            return
        if not any(expected in message.text for expected in self.expected_console):
            self.console_errors.append(f"{message.text} ({source})")

    def upload(self, path: Path) -> None:
        self.page.set_input_files("#file-input", str(path))

    def close(self) -> None:
        self.context.close()
        assert self.errors == [], f"JavaScript errors on the page: {self.errors}"
        assert self.console_errors == [], f"errors in the browser's console: {self.console_errors}"
        assert self.outside == [], f"the page reached outside the service: {self.outside}"


@pytest.fixture
def session(browser: Browser, service: str) -> Iterator[Session]:
    session = Session(browser, service, with_key=True)
    yield session
    session.close()


def api(service: str) -> httpx.Client:
    return httpx.Client(base_url=service, headers={"X-API-Key": API_KEY}, timeout=30)


def assert_dismissed(service: str, job_id: str | None) -> None:
    """The job ended ``dismissed`` (its status document stays a while) or is gone altogether."""
    with api(service) as client:
        answer = client.get(f"/jobs/{job_id}")
    assert answer.status_code == 404 or answer.json()["status"] == "dismissed", answer.text


def mercator_y(lat: float) -> float:
    """Web Mercator's northing of latitude ``lat`` on the unit sphere (in radians of longitude)."""
    return math.log(math.tan(math.pi / 4 + math.radians(lat) / 2))


#: The page's colours of road confidence (app.js).
CONFIDENCE_STOPS = [(0.0, (215, 48, 39)), (0.5, (254, 224, 144)), (1.0, (69, 117, 180))]

#: Screen positions of the vertices of every road line the page draws (SVG path data through its CTM).
VERTICES_JS = """() => [...document.querySelectorAll(".leaflet-overlay-pane svg path")].flatMap((path) => {
  const m = path.getScreenCTM();
  const numbers = path.getAttribute("d").match(/-?[0-9.]+/g).map(Number);
  const points = [];
  for (let i = 0; i + 1 < numbers.length; i += 2) {
    const [x, y] = [numbers[i], numbers[i + 1]];
    points.push([x * m.a + y * m.c + m.e, x * m.b + y * m.d + m.f]);
  }
  return points;
})"""


def confidence_colour(value: float) -> str:
    """The stroke the page gives a road of confidence ``value``, as Chrome serialises it."""
    upper = next(i for i, (stop, _) in enumerate(CONFIDENCE_STOPS) if stop >= value)
    if upper == 0:
        return "rgb({},{},{})".format(*CONFIDENCE_STOPS[0][1])
    (a, low), (b, high) = CONFIDENCE_STOPS[upper - 1], CONFIDENCE_STOPS[upper]
    t = (value - a) / (b - a)
    # JavaScript's Math.round: halves up.
    return "rgb({},{},{})".format(
        *(math.floor(lo + (hi - lo) * t + 0.5) for lo, hi in zip(low, high, strict=True))
    )


def wait_for_tiles(page: Page, layer: str) -> None:
    """Until the map stands still and shows ``layer``'s tiles, every one of them loaded and faded in."""
    page.wait_for_function(
        """(layer) => {
          const tiles = [...document.querySelectorAll(`.tiles-${layer} img.leaflet-tile`)];
          return !document.querySelector(".leaflet-zoom-anim") && tiles.length > 0 &&
            tiles.every((tile) => tile.classList.contains("leaflet-tile-loaded"));
        }""",
        arg=layer,
    )
    page.wait_for_timeout(400)  # Leaflet fades tiles in over 200 ms


def tiles_box(page: Page, layer: str) -> dict[str, float]:
    """The screen box of the opaque pixels of ``layer``'s tiles, read back from the page's own images."""
    box: dict[str, float] = page.evaluate(
        """(layer) => {
          let [left, top, right, bottom] = [Infinity, Infinity, -Infinity, -Infinity];
          for (const tile of document.querySelectorAll(`.tiles-${layer} img.leaflet-tile-loaded`)) {
            const rect = tile.getBoundingClientRect();
            const canvas = document.createElement("canvas");
            [canvas.width, canvas.height] = [tile.naturalWidth, tile.naturalHeight];
            const context = canvas.getContext("2d");
            context.drawImage(tile, 0, 0);
            const alpha = context.getImageData(0, 0, canvas.width, canvas.height).data;
            const [sx, sy] = [rect.width / canvas.width, rect.height / canvas.height];
            for (let y = 0; y < canvas.height; y++) {
              for (let x = 0; x < canvas.width; x++) {
                if (alpha[(y * canvas.width + x) * 4 + 3] === 0) continue;
                left = Math.min(left, rect.left + x * sx);
                right = Math.max(right, rect.left + (x + 1) * sx);
                top = Math.min(top, rect.top + y * sy);
                bottom = Math.max(bottom, rect.top + (y + 1) * sy);
              }
            }
          }
          return {x: left, y: top, width: right - left, height: bottom - top};
        }""",
        layer,
    )
    return box


def screenshot(page: Page) -> np.ndarray:
    """The page's viewport as RGB pixels, one per CSS pixel."""
    return np.asarray(Image.open(io.BytesIO(page.screenshot())).convert("RGB"))


def on_mask(
    pink: np.ndarray, points: np.ndarray, box: dict[str, float], radius: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """The points (screen x, y) inside ``box`` (the map's), and for each whether a pink pixel lies within
    ``radius``."""
    left, top = box["x"] + radius, box["y"] + radius
    right, bottom = box["x"] + box["width"] - radius, box["y"] + box["height"] - radius
    xy = np.rint(points).astype(int)
    xy = xy[(left <= xy[:, 0]) & (xy[:, 0] < right) & (top <= xy[:, 1]) & (xy[:, 1] < bottom)]
    hits = [pink[y - radius : y + radius + 1, x - radius : x + radius + 1].any() for x, y in xy]
    return xy, np.array(hits)


def test_page_and_its_files_are_served_without_a_key(tmp_path: Path) -> None:
    """In process (no browser, not slow): the page is public even with API keys on, since it asks for
    the key itself; its scripts and styles come from the service, none from elsewhere."""
    app = create_app(Settings(data_dir=tmp_path / "data", api_keys=[API_KEY]))
    with TestClient(app) as client:
        page = client.get("/", headers={"Accept": "text/html"})  # as a browser asks (others get JSON)
        assert page.status_code == 200, page.text
        assert page.headers["content-type"].startswith("text/html")
        sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert "static/app.js" in sources and "static/vendor/leaflet/leaflet.js" in sources
        for source in sources:
            if source.startswith("static/"):
                assert client.get(f"/{source}").status_code == 200, source
            else:  # links to the API docs and the favicon placeholder, nothing fetched from elsewhere
                assert source in ("docs", "data:,"), source
        assert client.get("/static/vendor/leaflet/images/layers.png").status_code == 200
        refused = client.get("/jobs")
        assert refused.status_code == 401
        assert "API key" in refused.json()["detail"]


def test_docs_are_served_from_the_service(tmp_path: Path) -> None:
    """In process: /docs is Swagger UI with its script, styles and icon from the service, no other host
    (FastAPI's default loads them from a CDN); ReDoc, CDN-only, is off."""
    app = create_app(Settings(data_dir=tmp_path / "data", api_keys=[API_KEY]))
    with TestClient(app) as client:
        docs = client.get("/docs")
        assert docs.status_code == 200, docs.text
        assert docs.headers["content-type"].startswith("text/html")
        assert "//" not in docs.text  # no URL with a host, nor a protocol-relative one
        sources = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
        assert sorted(sources) == [
            "static/vendor/swagger-ui/favicon-32x32.png",
            "static/vendor/swagger-ui/swagger-ui-bundle.js",
            "static/vendor/swagger-ui/swagger-ui.css",
        ]
        for source in sources:
            assert client.get(f"/{source}").status_code == 200, source
        assert "url: 'openapi.json'" in docs.text
        spec = client.get("/openapi.json")  # needs no key, like the page
        assert spec.status_code == 200 and spec.json()["info"]["title"] == "roadnet"
        redoc = client.get("/redoc")
        assert redoc.status_code == 404
        assert redoc.json()["detail"] == "Not Found"


@pytest.mark.slow
def test_docs_page_works_offline(browser: Browser, service: str) -> None:
    """Swagger UI renders the API's operations in the browser, nothing fetched from elsewhere."""
    session = Session(browser, service, with_key=False, path="docs")
    page = session.page
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("roadnet")
    expect(page.locator('.opblock[id^="operations-jobs-"]').first).to_be_visible()
    assert page.locator(".opblock").count() >= 8
    session.close()


@pytest.mark.slow
def test_invalid_upload_dropped_shows_the_api_detail(session: Session, service: str) -> None:
    content = "these are not pixels\n"
    with api(service) as client:
        answer = client.post("/jobs", files={"file": ("notes.txt", content.encode(), "text/plain")})
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert detail.startswith("notes.txt is not a raster that can be read"), detail

    # Drag and drop: a drop event carrying the file, as the browser sends when a file is dropped.
    transfer = session.page.evaluate_handle(
        """(content) => {
          const transfer = new DataTransfer();
          transfer.items.add(new File([content], "notes.txt", {type: "text/plain"}));
          return transfer;
        }""",
        content,
    )
    session.expected_console = ("status of 422",)
    session.page.dispatch_event("#drop-zone", "drop", {"dataTransfer": transfer})

    failed = session.page.locator(".upload.failed")
    expect(failed).to_be_visible()
    expect(failed.locator(".name")).to_have_text("notes.txt")
    expect(failed.locator(".message")).to_have_text(detail)


@pytest.mark.slow
def test_upload_watch_view_download_delete(session: Session, service: str, spacenet_utm_scene: Path) -> None:
    """A projected (UTM) scene from upload to its map: tiles of the scene under roads coloured by
    confidence that lie on the mask's tiles; layers, opacity, downloads, the offline basemap, delete."""
    page = session.page
    # An option from the panel the page builds from GET /processes/road-extraction.
    page.click("#options summary")
    page.fill('#options-fields input[name="stride"]', "128")

    # The upload shows its own progress: throttled to about 3 s, its bar and percentage move.
    cdp = session.context.new_cdp_session(page)
    cdp.send("Network.enable")
    throttle = {"offline": False, "latency": 0, "downloadThroughput": -1}
    cdp.send("Network.emulateNetworkConditions", {**throttle, "uploadThroughput": 400_000})
    session.upload(spacenet_utm_scene)
    page.wait_for_function(
        """() => {
          const bar = document.querySelector(".upload progress");
          const text = document.querySelector(".upload .message")?.textContent;
          return bar && bar.value > 0 && bar.value < 1 && /^Uploading… [1-9][0-9]? %$/.test(text);
        }"""
    )
    cdp.send("Network.emulateNetworkConditions", {**throttle, "uploadThroughput": -1})

    job = page.locator(".job").first
    expect(job.locator(".name")).to_have_text(spacenet_utm_scene.name)
    expect(page.locator(".upload")).to_have_count(0)
    expect(job).to_have_attribute("data-status", "successful", timeout=JOB_TIMEOUT_MS)
    job_id = job.get_attribute("data-job-id")
    with api(service) as client:
        status = client.get(f"/jobs/{job_id}").json()
        roads = client.get(f"/jobs/{job_id}/results/roads").json()
        scene_maxzoom = client.get(f"/jobs/{job_id}/tiles/scene/tilejson.json").json()["maxzoom"]
    assert status["options"] == {"stride": 128}
    assert roads["features"], "the tiny model found no roads in the SpaceNet scene: nothing to draw"

    # The job's row: a button opens the result (no button inside another control), with its state.
    open_button = job.locator("button.open")
    expect(open_button).to_have_attribute("aria-disabled", "false")
    assert page.locator("button button, a button, button a, [role=button] button, li[tabindex]").count() == 0
    open_button.click()
    expect(open_button).to_have_attribute("aria-current", "true")
    paths = page.locator(".leaflet-overlay-pane svg path")
    expect(paths).to_have_count(len(roads["features"]))
    expect(page.locator("#result-summary")).to_contain_text(f"{len(roads['features'])} roads")
    wait_for_tiles(page, "scene")
    # Each road is coloured by its confidence, the legend says how.
    strokes = [road.get_attribute("stroke") for road in paths.all()]
    assert strokes == [confidence_colour(f["properties"]["confidence"]) for f in roads["features"]]
    expect(page.locator(".legend")).to_contain_text("Road confidence")
    # The scene's tiles cover the scene's bbox, and every road lies on them.
    west, south, east, north = status["bbox"]
    scene = tiles_box(page, "scene")
    assert scene["height"] / scene["width"] == pytest.approx(
        (mercator_y(north) - mercator_y(south)) / math.radians(east - west), rel=0.02
    )
    stroke = 3  # a road at the scene's edge sticks out by half its line's width (3 px), rounded up
    for road in paths.all():
        line = road.bounding_box()
        assert line is not None
        for start, size in (("x", "width"), ("y", "height")):
            assert scene[start] - stroke <= line[start]
            assert line[start] + line[size] <= scene[start] + scene[size] + stroke
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-result-low-zoom.png"))

    # The roads lie on the mask's roads, as the page draws them: the mask alone, opaque, two zoom levels
    # in (a mask pixel over about two screen pixels), sampled under the roads' vertices and beside them.
    page.locator(".leaflet-control-zoom-in").click()
    page.locator(".leaflet-control-zoom-in").click()
    page.check("#layer-mask")
    page.fill("#overlay-opacity", "100")
    expect(page.locator(".tiles-mask")).to_have_css("opacity", "1")
    page.uncheck("#layer-scene")
    expect(page.locator(".tiles-scene")).to_have_count(0)
    wait_for_tiles(page, "mask")
    vertices = np.array(page.evaluate(VERTICES_JS))
    page.uncheck("#layer-roads")
    expect(paths).to_have_count(0)
    expect(page.locator(".legend")).to_have_count(0)
    # Pink, or pink blended into the map's dark grey where the browser scales a thin road's pixels.
    shown = screenshot(page).astype(int)
    pink = shown[..., 0] - shown[..., 1] > 60
    map_box = page.locator("#map").bounding_box()
    assert map_box is not None
    shown_vertices, on_road = on_mask(pink, vertices, map_box)
    _, beside = on_mask(pink, vertices + np.array([12, 12]), map_box)
    assert on_road.sum() >= 10 and on_road.mean() >= 0.9, (on_road.mean(), len(vertices))
    assert beside.mean() < on_road.mean() - 0.3, (beside.mean(), on_road.mean())

    # The probability over it; the slider sets the opacity of both overlays.
    page.check("#layer-probability")
    wait_for_tiles(page, "probability")
    page.fill("#overlay-opacity", "30")
    expect(page.locator(".tiles-probability")).to_have_css("opacity", "0.3")
    expect(page.locator(".tiles-mask")).to_have_css("opacity", "0.3")
    page.screenshot(path=str(ARTIFACTS / "web-probability.png"))
    page.uncheck("#layer-probability")
    page.uncheck("#layer-mask")
    expect(page.locator(".tiles-probability, .tiles-mask")).to_have_count(0)

    # Full resolution, on a road: the scene's tiles come from its finest level (its TileJSON's maxzoom);
    # a click on the road opens its popup with its length and confidence.
    scene_tiles: list[str] = []
    page.on("request", lambda request: "/tiles/scene/" in request.url and scene_tiles.append(request.url))
    page.check("#layer-scene")
    page.check("#layer-roads")
    expect(paths).to_have_count(len(roads["features"]))
    road_vertex = shown_vertices[on_road][len(shown_vertices[on_road]) // 2].tolist()
    page.mouse.move(*road_vertex)
    page.mouse.wheel(0, -30)  # half a zoom level in, around that road: it stays under the mouse
    wait_for_tiles(page, "scene")
    assert any(f"/tiles/scene/{scene_maxzoom}/" in url for url in scene_tiles), scene_tiles
    page.mouse.click(*road_vertex)
    expect(page.locator(".leaflet-popup-content")).to_contain_text("Road: ")
    expect(page.locator(".leaflet-popup-content")).to_contain_text("confidence")
    page.wait_for_timeout(300)  # the popup fades in
    page.screenshot(path=str(ARTIFACTS / "web-result-full-zoom.png"))

    with page.expect_download() as download_info:
        page.click("#download-roads")
    download = download_info.value
    assert download.suggested_filename == "RGB-PanSharpen_img1447-utm-roads.geojson"
    assert json.loads(Path(download.path()).read_text()) == roads

    with page.expect_download() as download_info:
        page.click("#download-mask")
    assert Path(download_info.value.path()).read_bytes()[:4] in (b"II*\x00", b"MM\x00*")

    # The address names the job shown, so a reload (or a bookmark) comes back to it.
    assert page.url.endswith(f"#job={job_id}")
    page.reload()
    expect(paths).to_have_count(len(roads["features"]))

    # The basemap is off by default (nothing so far went outside); checked, it asks OpenStreetMap for tiles
    # and, with no internet (the requests are refused here), says that it cannot load.
    assert session.outside == []
    session.allowed_outside = ("https://tile.openstreetmap.org/",)
    with page.expect_request(lambda request: request.url.startswith(session.allowed_outside)):
        page.check("#basemap-toggle")
    expect(page.locator("#basemap-status")).to_contain_text("The basemap cannot load")
    expect(page.locator("#announcer")).to_contain_text("The basemap cannot load")
    page.uncheck("#basemap-toggle")
    expect(page.locator("#basemap-status")).to_be_hidden()

    page.once("dialog", lambda dialog: dialog.accept())
    job.locator("button", has_text="Delete").click()
    expect(page.locator(f'.job[data-job-id="{job_id}"]')).to_have_count(0)
    expect(page.locator("#result-title")).to_have_text("No job selected")
    assert_dismissed(service, job_id)


@pytest.mark.slow
def test_cancel_a_job(session: Session, spacenet_scene: Path, service: str) -> None:
    page = session.page
    session.upload(spacenet_scene)
    job = page.locator(".job").first
    expect(job).to_be_visible()
    job_id = job.get_attribute("data-job-id")
    # Cancel while it is queued or running; a job that already finished is deleted instead.
    page.once("dialog", lambda dialog: dialog.accept())
    job.locator("button.secondary").click()  # Cancel, or Delete
    expect(page.locator(f'.job[data-job-id="{job_id}"]')).to_have_count(0)
    assert_dismissed(service, job_id)


def relative_luminance(rgb: str) -> float:
    """WCAG 2 relative luminance of a CSS ``rgb(...)`` colour."""
    channels = [int(c) / 255 for c in re.findall(r"[0-9]+", rgb)[:3]]
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


@pytest.mark.slow
def test_phone_width_and_accessibility(browser: Browser, service: str, spacenet_utm_scene: Path) -> None:
    """On a phone-width screen: rows whose controls have names and states, named progress bars, status
    changes announced, the status chip readable (WCAG AA contrast), the map usable, nothing too wide."""
    session = Session(browser, service, with_key=True, viewport=(390, 844))
    page = session.page
    session.upload(spacenet_utm_scene)
    name = spacenet_utm_scene.name
    job = page.locator(".job", has_text=name).first
    expect(job.locator("progress")).to_have_attribute("aria-label", f"Progress of {name}")
    expect(job).to_have_attribute("data-status", "successful", timeout=JOB_TIMEOUT_MS)
    expect(page.locator("#announcer")).to_contain_text(f"{name}: successful")
    expect(page.locator("#announcer")).to_have_attribute("aria-live", "polite")

    # One button opens the result, another deletes the job; neither inside the other or a focusable row.
    assert page.locator("button button, a button, button a, [role=button] button, li[tabindex]").count() == 0
    open_button = job.locator("button.open")
    expect(open_button).to_have_accessible_name(name)
    expect(open_button).to_have_attribute("aria-disabled", "false")
    expect(job.locator("button.secondary")).to_have_accessible_name(f"Delete {name}")
    chip = job.locator(".status")
    expect(chip).to_have_text("successful")
    colour, background = chip.evaluate(
        "(e) => [getComputedStyle(e).color, getComputedStyle(e).backgroundColor]"
    )
    lighter, darker = sorted((relative_luminance(colour), relative_luminance(background)), reverse=True)
    assert (lighter + 0.05) / (darker + 0.05) >= 4.5, (colour, background)

    open_button.click()
    expect(open_button).to_have_attribute("aria-current", "true")
    wait_for_tiles(page, "scene")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # nothing scrolls sideways
    box = page.locator("#map").bounding_box()
    assert box is not None and box["width"] >= 360 and box["height"] >= 280
    expect(page.locator("#result-title")).to_be_in_viewport()  # scrolled to the result
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-phone.png"))

    page.once("dialog", lambda dialog: dialog.accept())
    job.locator("button.secondary").click()
    expect(page.locator(".job", has_text=name)).to_have_count(0)
    session.close()


@pytest.mark.slow
def test_api_key_is_asked_once_and_sent(browser: Browser, service: str) -> None:
    # The keyless requests that open the dialog are refused, and logged.
    session = Session(browser, service, with_key=False, expected_console=("status of 401",))
    page = session.page
    dialog = page.locator("#key-dialog")
    expect(dialog).to_be_visible()
    page.fill("#key-input", API_KEY)
    with page.expect_response(lambda response: response.url == f"{service}/jobs") as listed:
        page.click("#key-save")
    assert listed.value.status == 200
    assert listed.value.request.headers.get("x-api-key") == API_KEY
    expect(dialog).to_be_hidden()
    assert page.evaluate("localStorage.getItem('roadnet.apiKey')") == API_KEY

    # Asked once: a new visit uses the stored key.
    with page.expect_response(lambda response: response.url == f"{service}/jobs") as listed:
        page.reload()
    assert listed.value.status == 200
    expect(dialog).to_be_hidden()
    session.close()
