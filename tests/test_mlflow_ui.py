"""A study in the MLflow UI, in a real headless Chromium: the study run with its nested trials and a chart.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them; see the README's test
command) and Selenium (the ``dev`` extra). Skips, saying why, only where no browser is installed.
"""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import pytest

from tests.fakes import SPACE, NumpyModel, blobs
from tests.mlflow_server import rest
from tests.test_tracking import drive_study
from tuner import tune
from tuner.tracking import MlflowTracker
from tuner.tracking.base import ui_url

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
DRIVERS = ("chromedriver", "/usr/lib/chromium/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1600,1000",
)
WAIT = 90  # seconds for the UI to load on a busy machine


@pytest.fixture
def browser(tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (dev extra)")
    binary = next((p for p in map(shutil.which, BROWSERS) if p), None)
    driver = next((p for p in map(shutil.which, DRIVERS) if p), None)
    if binary is None or driver is None:
        pytest.skip(
            "no Chromium browser and driver installed; install them with "
            "`apt-get install chromium chromium-driver` (.ci/run does)"
        )
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")  # fresh profile per test
    options.binary_location = binary
    chrome = webdriver.Chrome(options=options, service=Service(driver))
    try:
        yield chrome
    finally:
        chrome.quit()


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG file"
    return struct.unpack(">II", data[16:24])


def test_study_shows_in_the_mlflow_ui_with_nested_trials_and_a_chart(mlflow_server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    tracker = MlflowTracker(mlflow_server, "ui-study")
    drive_study(tracker, "study-in-the-ui", "ui-study")
    assert tracker.failures == 0
    wait = WebDriverWait(browser, WAIT)

    browser.get(f"{mlflow_server}/#/experiments/{tracker.experiment_id}/runs")
    parent = wait.until(ec.presence_of_element_located((By.XPATH, "//*[text()='study-in-the-ui']")))
    for close in browser.find_elements(By.CSS_SELECTOR, "button[aria-label=Close]"):
        close.click()  # the assistant side panel hides half the table
    row = parent.find_element(By.XPATH, "./ancestor::*[contains(@class, 'ag-row')]")
    row.find_elements(By.CSS_SELECTOR, "button")[-1].click()  # expand the study run: its trials below
    for number in range(3):
        wait.until(ec.presence_of_element_located((By.XPATH, f"//*[text()='trial-{number:04d}']")))

    mode = browser.find_element(By.CSS_SELECTOR, "input[name=runs-view-mode][value=CHART]")
    mode.find_element(By.XPATH, "./ancestor::label").click()
    search = wait.until(
        ec.element_to_be_clickable((By.CSS_SELECTOR, "input[placeholder='Search metric charts']"))
    )
    search.send_keys("val_loss")
    wait.until(ec.presence_of_element_located((By.XPATH, "//*[contains(text(), 'trial-0002 (val_loss)')]")))
    plots = wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .main-svg"))
    assert plots, "no metric chart was drawn"
    names = browser.find_element(By.TAG_NAME, "body").text
    assert "study-in-the-ui" in names and all(f"trial-{n:04d}" in names for n in range(3))

    shot = tmp_path / "mlflow-ui.png"
    assert browser.save_screenshot(str(shot))
    data = shot.read_bytes()
    width, height = png_size(data)
    assert (width, height) >= (800, 600) and len(data) > 30_000  # a rendered page, not a blank one


def test_the_links_regtuner_prints_open_a_study_on_its_runs_not_the_genai_overview(mlflow_server, browser):
    """MLflow 3.17 opens an experiment on its GenAI overview unless the URL asks for the model-training
    views (the experiment's kind tag is not read while the UI's GenAI / Model training switch exists):
    the links ``regtuner ui`` prints and the tracker's ``run_url`` ask."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    tracker = MlflowTracker(mlflow_server, "ui-landing")
    drive_study(tracker, "study-landing", "ui-landing")
    assert tracker.failures == 0
    wait = WebDriverWait(browser, WAIT)
    browser.get(ui_url(mlflow_server, tracker.experiment_id))
    wait.until(ec.presence_of_element_located((By.XPATH, "//*[text()='study-landing']")))  # the runs table
    assert "/runs" in browser.current_url and "workflowType=machine_learning" in browser.current_url
    browser.get(tracker.run_url)  # the study run's own page
    wait.until(ec.presence_of_element_located((By.XPATH, "//*[contains(text(), 'study-landing')]")))
    assert "overview" not in browser.current_url


#: where the browser tests keep their screenshots for a person to look at (CI: collect this folder)
SHOTS = Path(
    os.environ.get("REGTUNER_TEST_ARTIFACTS", Path(__file__).resolve().parents[1] / "test-artifacts")
)


def test_a_study_opens_on_its_runs_and_its_charts_show_the_trials_before_any_baseline(
    mlflow_server, browser, tmp_path, numpy_adapter
):
    """A real ``tune()`` study (baselines on) in the UI as ``regtuner ui`` links it: the runs table
    first, and in the chart view the trials' curves on the first screen, with no baseline figure among
    the charts (the baselines are tags and ``baselines.csv``: as metrics they sorted first, one bar
    chart each). Screenshots of both are kept in :data:`SHOTS`."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    result = tune(lambda: NumpyModel(5, 3), blobs(n=200), space=SPACE, n_trials=3, max_epochs=3,
                  tracking=mlflow_server, experiment="ui-charts", progress=False,
                  storage=str(tmp_path / "studies.db"))  # fmt: skip
    run = rest(mlflow_server, "/api/2.0/mlflow/runs/get", {"run_id": result.mlflow_run_id})["run"]
    SHOTS.mkdir(parents=True, exist_ok=True)
    wait = WebDriverWait(browser, WAIT)

    browser.get(ui_url(mlflow_server, run["info"]["experiment_id"]))
    name = run["info"]["run_name"]
    parent = wait.until(ec.presence_of_element_located((By.XPATH, f"//*[text()='{name}']")))
    for close in browser.find_elements(By.CSS_SELECTOR, "button[aria-label=Close]"):
        close.click()
    assert "/runs" in browser.current_url
    assert browser.save_screenshot(str(SHOTS / "mlflow-landing.png"))
    row = parent.find_element(By.XPATH, "./ancestor::*[contains(@class, 'ag-row')]")
    row.find_elements(By.CSS_SELECTOR, "button")[-1].click()  # the trials under the study run
    wait.until(ec.presence_of_element_located((By.XPATH, "//*[text()='trial-0002']")))
    mode = browser.find_element(By.CSS_SELECTOR, "input[name=runs-view-mode][value=CHART]")
    mode.find_element(By.XPATH, "./ancestor::label").click()
    wait.until(ec.presence_of_element_located((By.XPATH, "//*[text()='Model metrics']")))
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, ".js-plotly-plot .main-svg"))
    assert browser.save_screenshot(str(SHOTS / "mlflow-charts.png"))
    charts = browser.find_element(By.TAG_NAME, "body").text
    charts = charts[charts.index("Model metrics") : charts.index("System metrics")]
    assert "trial-0000 (gap)" in charts and "trial-0002 (gap)" in charts  # the trials' curves, first
    assert "baseline" not in charts, "a baseline figure among the charts"
    assert png_size((SHOTS / "mlflow-charts.png").read_bytes()) >= (800, 600)
