"""The report as a person sees it: headless Chromium loads it offline, every figure decodes, the page is not blank.

Skipped only where no Chromium is installed (Debian/Ubuntu: ``apt-get install -y chromium``).
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image, ImageStat

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
# Offline and quiet: no network, no first-run UI, no background fetches; a throwaway profile per run.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
         "--disable-dev-shm-usage")


@pytest.fixture(scope="module")
def browser() -> str:
    found = next((path for name in BROWSERS if (path := shutil.which(name))), None)
    if found is None:
        pytest.skip("Chromium is not installed (apt-get install -y chromium)")
    return found


def run_browser(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, timeout=120,
                          check=False)


@pytest.fixture(scope="module")
def rendered(full_report):
    return full_report[0]


def test_chromium_loads_every_figure_and_table(browser, rendered, tmp_path) -> None:
    html = rendered.html.read_text(encoding="utf-8")
    expected_images = html.count("<img ")
    done = run_browser(browser, tmp_path / "profile", "--dump-dom", rendered.html.as_uri())
    dom = done.stdout.decode("utf-8", "replace")
    assert done.returncode == 0 and "</html>" in dom, done.stderr.decode()[-2000:]
    # The page's marker script ran after "load" and counted decoded images (naturalWidth > 0).
    marker = re.search(r'id="render-check" data-images-total="(\d+)" data-images-loaded="(\d+)"', dom)
    assert marker, "the load marker is missing: the page did not finish loading"
    assert int(marker.group(1)) == expected_images >= 12 and int(marker.group(2)) == expected_images
    for section in ("summary", "curves", "checks", "average-adversarial-grid", "transfer", "reproduce"):
        assert f'id="{section}"' in dom
    for table in ("summary-table", "cascade-table", "perturbation-table", "gradient-table"):
        assert f'<table id="{table}"' in dom
    assert dom.count('class="badge warn"') == 2


def test_chromium_screenshot_is_not_blank(browser, rendered, tmp_path) -> None:
    shot = tmp_path / "page.png"
    done = run_browser(browser, tmp_path / "profile", "--window-size=1280,2400", f"--screenshot={shot}",
                       rendered.html.as_uri())
    assert done.returncode == 0 and shot.is_file(), done.stderr.decode()[-2000:]
    image = Image.open(io.BytesIO(shot.read_bytes())).convert("RGB")
    assert image.size == (1280, 2400)
    stats = ImageStat.Stat(image.convert("L"))
    assert stats.stddev[0] > 20  # text, tables and figures, not a uniform page
    # The dark header band of the page is at the top: the stylesheet was applied.
    header = image.crop((0, 0, 1280, 60)).convert("L")
    assert ImageStat.Stat(header).mean[0] < 80
