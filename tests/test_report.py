"""The study report: text, Markdown, HTML opened in a real browser, real PNG plots, MLflow and the CLI."""

import io
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests import planted as P
from tests.mlflow_server import artifacts, find_runs, metrics_of, tags_of  # mlflow_server: conftest.py
from tuner import tune
from tuner.cli.main import main

SPACE = {
    "knobs": {
        "learning_rate": {"low": 0.05, "high": 0.5, "log": True},
        "l2": {"low": 1e-6, "high": 1e-2, "log": True},
        "batch_size": [16, 32],
        "patience": 3,
    }
}
PNG = b"\x89PNG\r\n\x1a\n"


pytestmark = pytest.mark.usefixtures("planted_adapters")  # conftest.py


def study(**kw):
    args = dict(space=SPACE, n_trials=6, max_epochs=10, tracking=False, progress=False)
    args.update(kw)
    return tune(lambda: P.PlantedModel(5, 3), P.blobs(n=300, spread=2.0), **args)


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    with P.installed():
        return study(storage=str(tmp_path_factory.mktemp("report") / "studies.db"))


def assert_real_png(path, min_bytes=5000):
    from matplotlib.image import imread

    data = path.read_bytes()
    assert data[:8] == PNG and len(data) > min_bytes, path
    pixels = imread(io.BytesIO(data), format="png")
    assert pixels.shape[0] > 200 and pixels.shape[1] > 300
    rgba = (pixels.reshape(-1, pixels.shape[-1]) * 255).astype(np.uint32)
    packed = rgba[:, 0] << 16 | rgba[:, 1] << 8 | rgba[:, 2]
    assert len(np.unique(packed)) > 20 and pixels.std() > 0.05, f"{path.name} is nearly a single colour"


def test_text_report_has_every_section(result):
    text = result.report()
    for heading in ("Chosen configuration", "Validation vs test", "Baselines on the same split", "Diagnosis"):
        assert heading in text
    assert f"trial #{result.best_trial}" in text
    for name in ("dummy", "linear", "boosting", "untuned", "textbook", "tuned (chosen)"):
        assert name in text
    loss_row = next(line for line in text.splitlines() if line.strip().startswith("loss "))
    assert (
        f"{result.validation_scores['loss']:.4g}" in loss_row and f"{result.optimism['loss']:.4g}" in loss_row
    )
    assert result.diagnosis[0].summary.split(":")[0] in text


def test_markdown_links_plots_that_are_real_pngs(result, tmp_path):
    md = result.to_markdown(plots_dir=tmp_path / "plots")
    assert "| score | validation | test ± se | optimism |" in md
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    names = {link.rsplit("/", 1)[-1] for link in links}
    expected = {"learning_curves.png", "gap.png", "objective.png", "importances.png", "baselines.png"}
    assert names == expected | {"parallel.png"}
    assert names == {p.name for p in (tmp_path / "plots").iterdir()}
    for name in names:
        assert_real_png(tmp_path / "plots" / name)
    assert "![" not in result.to_markdown()  # no plots unless asked


def test_pareto_front_plot_for_a_multi_objective_study(tmp_path):
    r = study(objective=["val_loss", "val_accuracy"], n_trials=4, baselines=False)
    plots = r.plots(tmp_path)
    assert "pareto" in plots
    assert_real_png(plots["pareto"])


@pytest.mark.browser
def test_html_report_opens_in_a_browser(result, tmp_path):
    webdriver = pytest.importorskip("selenium.webdriver")
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.skip("chromium and chromedriver are needed to open the report")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    page = result.to_html(tmp_path / "report.html")
    options = Options()
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    options.binary_location = shutil.which("chromium")
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    try:
        driver.get(page.as_uri())
        assert result.study_name in driver.title
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.complete, i.naturalWidth])"
        )
        assert len(images) == 6 and all(done and width > 300 for done, width in images)
        body = driver.find_element("tag name", "body").text
        assert "Validation vs test" in body and "Diagnosis" in body
        assert len(driver.find_elements("tag name", "table")) >= 3
    finally:
        driver.quit()


@pytest.mark.slow
def test_study_report_lands_in_the_mlflow_run_and_the_cli_prints_it(mlflow_server, tmp_path, capsys):
    r = study(tracking=mlflow_server, experiment="report-study", n_trials=4)
    run = next(
        x for x in find_runs(mlflow_server, "report-study") if tags_of(x).get("regtuner.role") == "study"
    )
    assert run["info"]["run_id"] == r.mlflow_run_id
    files = set(artifacts(mlflow_server, r.mlflow_run_id))
    assert {"report.txt", "report.md", "report.html", "diagnosis.json", "plots", "baselines.csv"} <= files
    assert "plots/learning_curves.png" in artifacts(mlflow_server, r.mlflow_run_id, "plots")
    tags = tags_of(run)
    assert float(tags["baseline.untuned.test_accuracy"]) == pytest.approx(
        next(b for b in r.baselines if b.name == "untuned").test["accuracy"]
    )
    assert not [k for k in tags if k.startswith("baseline.") and not k.endswith(".test_accuracy")]
    metrics = metrics_of(run)
    assert not [k for k in metrics if k.startswith("baseline")]
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_server)
    table = client.download_artifacts(r.mlflow_run_id, "baselines.csv", str(tmp_path))
    rows = Path(table).read_text().splitlines()
    linear = next(b for b in r.baselines if b.name == "linear")
    assert rows[0] == "baseline,part,score,value,description,seconds,error"
    assert any(row.startswith(f"linear,validation,loss,{linear.validation['loss']}") for row in rows)
    for part in ("val", "test"):  # log_loss is logged only where it is not the loss itself
        if f"{part}_log_loss" in metrics:
            assert metrics[f"{part}_log_loss"] != pytest.approx(metrics[f"{part}_loss"])
    kind = client.get_experiment_by_name("report-study").tags.get("mlflow.experimentKind")
    assert kind == "custom_model_development"  # the UI opens on the runs
    assert metrics["optimism_loss"] == pytest.approx(r.optimism["loss"])
    assert metrics["val_loss"] == pytest.approx(r.validation_scores["loss"])

    capsys.readouterr()
    assert main(["report", "report-study", "--tracking-uri", mlflow_server]) == 0
    assert capsys.readouterr().out.strip() == r.report().strip()
    html = tmp_path / "copy.html"
    assert main(["report", r.mlflow_run_id, "--tracking-uri", mlflow_server, "--html", str(html)]) == 0
    assert r.study_name in capsys.readouterr().out and html.read_text().count("data:image/png;base64,") == 6
    assert main(["report", r.study_name, "--tracking-uri", mlflow_server, "--format", "markdown"]) == 0
    assert "## Validation vs test" in capsys.readouterr().out
    assert main(["report", "no-such-study", "--tracking-uri", mlflow_server]) == 2
    assert "no study found for 'no-such-study'" in capsys.readouterr().err
    assert main(["report", "report-studdy", "--tracking-uri", mlflow_server]) == 2
    assert "Did you mean 'report-study'?" in capsys.readouterr().err


def test_cli_rebuilds_a_summary_when_the_study_logged_no_report(mlflow_server, capsys):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(mlflow_server)
    exp = client.create_experiment("died")
    tags = {"regtuner.role": "study", "regtuner.study": "died-study", "regtuner.best_trial": "2"}
    run = client.create_run(exp, tags=tags)
    client.log_param(run.info.run_id, "best.dropout", "0.3")
    client.set_tag(run.info.run_id, "baseline.boosting.val_accuracy", "0.875")
    for key, value in {"test_accuracy": 0.81, "val_accuracy": 0.9, "baseline_linear_val_loss": 0.5}.items():
        client.log_metric(run.info.run_id, key, value)
    client.set_terminated(run.info.run_id, "FAILED")
    assert main(["report", "died", "--tracking-uri", mlflow_server]) == 0
    out = capsys.readouterr().out
    assert "no report was logged" in out and "dropout = 0.3" in out and "accuracy 0.81" in out
    assert "linear_val_loss 0.5" in out and "boosting.val_accuracy 0.875" in out


def test_diagnosis_json_is_plain_data(result, tmp_path):
    from tuner.insight.report import write_files

    written = write_files(result, tmp_path)
    data = json.loads((tmp_path / "diagnosis.json").read_text())
    assert data["best_trial"] == result.best_trial and len(data["baselines"]) == 5
    assert [d["kind"] for d in data["diagnosis"]] == [f.kind for f in result.diagnosis]
    assert (tmp_path / "report.md").read_text().count("](plots/") == len(
        [p for p in written if p.suffix == ".png"]
    )


def test_report_in_an_empty_folder_creates_no_store_and_says_where_to_look(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["report"]) == 2
    err = capsys.readouterr().err
    assert "there is no tracking store at" in err and "--tracking-uri" in err
    assert list(tmp_path.iterdir()) == []  # no mlflow.db, no table-creation output
