"""Headless Chromium for the report's tests: load a page from the folder alone (file://) and
read back what its scripts wrote into the DOM, and what they logged."""

import os
import re
import shutil
import subprocess
import tempfile

import pytest

#: Flags of a headless, offline Chromium with software WebGL (no GPU, no network chatter).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--use-angle=swiftshader",
         "--enable-unsafe-swiftshader", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--disable-quic", "--enable-logging=stderr", "--v=0",
         "--virtual-time-budget=10000"]


def chromium() -> str:
    """The Chromium binary; skips the test where there is none, unless the environment says
    a browser is required (CI sets DEEPSDF_REQUIRE_BROWSER=1), where it fails."""
    found = shutil.which("chromium") or shutil.which("chromium-browser") \
        or shutil.which("google-chrome")
    if found is None:
        message = "no Chromium (apt-get install chromium)"
        if os.environ.get("DEEPSDF_REQUIRE_BROWSER") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return found


def load(page) -> tuple[str, list]:
    """(the DOM after the page's scripts ran, the console errors it logged)."""
    with tempfile.TemporaryDirectory() as profile:
        result = subprocess.run([chromium(), *FLAGS, f"--user-data-dir={profile}",
                                 "--dump-dom", page.resolve().as_uri()],
                                capture_output=True, text=True, timeout=120)
    console = [line for line in result.stderr.splitlines()
               if "CONSOLE" in line and re.search(r"error|uncaught", line, re.I)]
    return result.stdout, console
