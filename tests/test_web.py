"""The web page in a real browser: Debian's chromium driven by Playwright, against a running service.

One service (``roadnet serve``: the API and its embedded worker, API keys on; started with the service
tests' harness) and one browser serve the browser tests. Every test but the key test starts with the key
already in the page's localStorage; the key test starts without it and types it into the dialog.
Requests to any host but the service are refused and recorded: the page must work with no internet.
The first test checks in process, without a browser, that the page and its files are served.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi.testclient import TestClient
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect, sync_playwright
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

    def __init__(self, browser: Browser, service: str, *, with_key: bool, path: str = "") -> None:
        self.context: BrowserContext = browser.new_context(
            viewport={"width": 1280, "height": 800}, accept_downloads=True
        )
        if with_key:
            self.context.add_init_script(f"localStorage.setItem('roadnet.apiKey', {json.dumps(API_KEY)})")
        self.outside: list[str] = []
        self.allowed_outside: tuple[str, ...] = ()  # URL prefixes a test lets the page ask for (then aborted)
        self.errors: list[str] = []
        own_host = urlsplit(service).netloc
        self.context.route("**/*", self._route(own_host))
        self.page: Page = self.context.new_page()
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
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

    def upload(self, path: Path) -> None:
        self.page.set_input_files("#file-input", str(path))

    def close(self) -> None:
        self.context.close()
        assert self.errors == [], f"JavaScript errors on the page: {self.errors}"
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
    session.page.dispatch_event("#drop-zone", "drop", {"dataTransfer": transfer})

    failed = session.page.locator(".upload.failed")
    expect(failed).to_be_visible()
    expect(failed.locator(".name")).to_have_text("notes.txt")
    expect(failed.locator(".message")).to_have_text(detail)


@pytest.mark.slow
def test_upload_watch_view_download_delete(session: Session, service: str, spacenet_scene: Path) -> None:
    page = session.page
    # An option from the panel the page builds from GET /processes/road-extraction.
    page.click("#options summary")
    page.fill('#options-fields input[name="stride"]', "128")

    # The upload shows its own progress: throttled to about 3 s, its bar and percentage move.
    cdp = session.context.new_cdp_session(page)
    cdp.send("Network.enable")
    throttle = {"offline": False, "latency": 0, "downloadThroughput": -1}
    cdp.send("Network.emulateNetworkConditions", {**throttle, "uploadThroughput": 400_000})
    session.upload(spacenet_scene)
    page.wait_for_function(
        """() => {
          const bar = document.querySelector(".upload progress");
          const text = document.querySelector(".upload .message")?.textContent;
          return bar && bar.value > 0 && bar.value < 1 && /^Uploading… [1-9][0-9]? %$/.test(text);
        }"""
    )
    cdp.send("Network.emulateNetworkConditions", {**throttle, "uploadThroughput": -1})

    job = page.locator(".job").first
    expect(job.locator(".name")).to_have_text(spacenet_scene.name)
    expect(page.locator(".upload")).to_have_count(0)
    expect(job).to_have_attribute("data-status", "successful", timeout=JOB_TIMEOUT_MS)
    job_id = job.get_attribute("data-job-id")
    with api(service) as client:
        status = client.get(f"/jobs/{job_id}").json()
        roads = client.get(f"/jobs/{job_id}/results/roads").json()
    assert status["options"] == {"stride": 128}
    assert roads["features"], "the tiny model found no roads in the SpaceNet scene: nothing to draw"

    job.click()
    paths = page.locator(".leaflet-overlay-pane svg path")
    expect(paths).to_have_count(len(roads["features"]))
    image = page.locator(".leaflet-overlay-pane img.leaflet-image-layer")
    expect(image).to_have_count(1)
    # The preview covers the scene's bbox from the status document: its shape on the Web Mercator map is
    # the bbox's, and every road lies on it.
    west, south, east, north = status["bbox"]
    box = image.bounding_box()
    assert box is not None
    assert box["height"] / box["width"] == pytest.approx(
        (mercator_y(north) - mercator_y(south)) / math.radians(east - west), rel=0.01
    )
    stroke = 3  # a road at the scene's edge sticks out by half its line's width (3 px), rounded up
    for road in paths.all():
        line = road.bounding_box()
        assert line is not None
        for start, size in (("x", "width"), ("y", "height")):
            assert box[start] - stroke <= line[start]
            assert line[start] + line[size] <= box[start] + box[size] + stroke
    expect(page.locator("#result-summary")).to_contain_text(f"{len(roads['features'])} roads")

    # A click on a road opens its popup with its length.
    point = page.evaluate(
        """() => {
          const path = document.querySelector(".leaflet-overlay-pane svg path");
          const p = path.getPointAtLength(path.getTotalLength() / 2);
          const m = path.getScreenCTM();
          return {x: p.x * m.a + p.y * m.c + m.e, y: p.x * m.b + p.y * m.d + m.f};
        }"""
    )
    page.mouse.click(point["x"], point["y"])
    expect(page.locator(".leaflet-popup-content")).to_contain_text("Road: ")
    page.wait_for_timeout(300)  # the popup fades in
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "web-result.png"))

    # The Mask view shows the service's mask_preview in place of the scene and its vectors; back to Roads
    # shows them again.
    expect(page.locator("#mask-view-label")).to_have_text("Mask")
    page.locator("#mask-view-label").click()
    expect(page.locator(".leaflet-popup")).to_have_count(0)
    expect(paths).to_have_count(0)
    expect(image).to_have_count(1)
    expect(image).to_have_attribute("alt", "Road mask")
    assert image.bounding_box() == box  # the same extent as the preview
    page.screenshot(path=str(ARTIFACTS / "web-mask.png"))
    page.locator("#view-toggle label").first.click()
    expect(paths).to_have_count(len(roads["features"]))

    with page.expect_download() as download_info:
        page.click("#download-roads")
    download = download_info.value
    assert download.suggested_filename == "RGB-PanSharpen_img1447-roads.geojson"
    assert json.loads(Path(download.path()).read_text()) == roads

    with page.expect_download() as download_info:
        page.click("#download-mask")
    assert Path(download_info.value.path()).read_bytes()[:4] in (b"II*\x00", b"MM\x00*")

    # The address names the job shown, so a reload (or a bookmark) comes back to it.
    assert page.url.endswith(f"#job={job_id}")
    page.reload()
    expect(paths).to_have_count(len(roads["features"]))

    # The basemap is off by default (nothing so far went outside); checked, it asks OpenStreetMap for tiles.
    assert session.outside == []
    session.allowed_outside = ("https://tile.openstreetmap.org/",)
    with page.expect_request(lambda request: request.url.startswith(session.allowed_outside)):
        page.check("#basemap-toggle")
    page.uncheck("#basemap-toggle")

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
    job.locator("button").click()
    expect(page.locator(f'.job[data-job-id="{job_id}"]')).to_have_count(0)
    assert_dismissed(service, job_id)


@pytest.mark.slow
def test_api_key_is_asked_once_and_sent(browser: Browser, service: str) -> None:
    session = Session(browser, service, with_key=False)
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
