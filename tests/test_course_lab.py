"""``lstmjax-course lab``: a double click on a tutorial in JupyterLab opens a notebook, in a real browser.

The command starts JupyterLab with a settings folder that makes jupytext's notebook viewer the
default for ``.md`` files. Here it serves a folder holding one tutorial; headless Chromium
(through selenium, as ``tests/test_docs_site.py``) double-clicks the file in JupyterLab's file
browser and must get a notebook (code cells), not the text editor JupyterLab uses by default.
Skips where Chromium is missing, fails under ``CI=true``.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from lstmjax.course import lab

REPO = pathlib.Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("LSTMJAX_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("LSTMJAX_CHROMEDRIVER", "/usr/bin/chromedriver")
TUTORIAL = "02_pipeline.md"


def test_settings_keep_what_is_there(tmp_path):
    path = tmp_path / "@jupyterlab" / "docmanager-extension" / "plugin.jupyterlab-settings"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"defaultViewers": {"python": "Editor"}, "autosave": False}))
    lab.write_lab_settings(tmp_path)
    settings = json.loads(path.read_text())
    assert settings == {"autosave": False, "defaultViewers": {"python": "Editor", **lab.DEFAULT_VIEWERS}}
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not JSON"):
        lab.write_lab_settings(tmp_path)


def test_lab_command_refuses_a_missing_folder(tmp_path, capsys):
    from lstmjax.course.cli import main

    assert main(["lab", "--dir", str(tmp_path / "missing")]) == 2
    assert "no folder" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, seconds: float) -> dict:
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.loads(response.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


@pytest.mark.slow
def test_a_double_click_opens_a_tutorial_as_a_notebook(tmp_path):
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        if os.environ.get("CI") == "true":
            pytest.fail(f"no Chromium at {CHROMIUM} or no chromedriver at {CHROMEDRIVER}")
        pytest.skip(f"no Chromium at {CHROMIUM} or no chromedriver at {CHROMEDRIVER}")
    pytest.importorskip("jupyterlab")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    course_dir = tmp_path / "tutorials"
    course_dir.mkdir()
    shutil.copyfile(REPO / "tutorials" / TUTORIAL, course_dir / TUTORIAL)
    port = _free_port()
    log = open(tmp_path / "lab.log", "wb")  # noqa: SIM115 - closed in the finally below
    server = subprocess.Popen(
        [sys.executable, "-m", "lstmjax.course", "lab", "--dir", str(course_dir), "--settings-dir",
         str(tmp_path / "settings"), "--", "--no-browser", f"--port={port}", "--ServerApp.token=",
         "--ServerApp.password=", "--ServerApp.ip=127.0.0.1", "--allow-root"],  # CI containers run as root
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,  # its own process group: JupyterLab is a child
        env={**os.environ, "HOME": str(tmp_path), "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime")})
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000"):
        options.add_argument(flag)
    driver = None
    try:
        base = f"http://127.0.0.1:{port}"
        _wait_for(f"{base}/api/status", 300)  # minutes on a loaded 2-core machine
        served = _wait_for(f"{base}/lab/api/settings/@jupyterlab/docmanager-extension:plugin", 30)
        assert served["settings"]["defaultViewers"]["markdown"] == "Jupytext Notebook"
        driver = webdriver.Chrome(service=webdriver.ChromeService(CHROMEDRIVER), options=options)
        driver.get(f"{base}/lab")
        wait = WebDriverWait(driver, 180)
        item = wait.until(ec.element_to_be_clickable(
            (By.XPATH, f"//li[contains(@class,'jp-DirListing-item')][.//span[text()='{TUTORIAL}']]")))
        ActionChains(driver).double_click(item).perform()
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel .jp-CodeCell")
                   or d.find_elements(By.CSS_SELECTOR, ".jp-FileEditor"))
        assert not driver.find_elements(By.CSS_SELECTOR, ".jp-FileEditor"), "the tutorial opened as text"
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel .jp-Cell")) > 3)  # renders bit by bit
        cells = driver.find_elements(By.CSS_SELECTOR, ".jp-NotebookPanel .jp-Cell")
        assert len(cells) > 3, f"only {len(cells)} cells"
        assert any("import" in c.text for c in cells[:6]), "the setup cell is not among the first cells"
    finally:
        if driver is not None:
            driver.quit()
        os.killpg(server.pid, signal.SIGTERM)  # the command and the JupyterLab it started
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
        log.close()
        print((tmp_path / "lab.log").read_text(errors="replace")[-3000:])  # shown when the test fails
