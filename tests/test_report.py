"""lrcontrol report / plot / run --plot / export --long, on real stores (the smoke suite's, and small edge stores).

The smoke store is built once per test session, shared by xdist workers through a file lock
(pytest-xdist's documented recipe), since running the suite takes most of this file's time.
"""

from __future__ import annotations

import fcntl
import hashlib
import html
import json
import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from lrcontrol.bench.store import Store
from lrcontrol.cli import app

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("lr", "loss", "sensitivity", "profile", "heatmap", "cost")


def invoke(*args: str):
    return CliRunner().invoke(app, list(args))


def _one_line_error(result) -> str:
    """The error output, checked to be lrcontrol's one-line message and no traceback."""
    text = result.stderr if result.stderr_bytes is not None else result.output
    assert "Traceback" not in text and result.exception is None or isinstance(result.exception, SystemExit), text
    lines = [line for line in text.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), text
    return lines[0]


@pytest.fixture(scope="session")
def smoke_store(tmp_path_factory) -> Path:
    shared = tmp_path_factory.getbasetemp().parent  # the same folder for every xdist worker
    store = shared / "report-smoke.db"
    with open(shared / "report-smoke.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (shared / "report-smoke.done").exists():
            result = invoke("sweep", str(ROOT / "suites" / "smoke.toml"), "--store", str(store), "--workers", "2")
            assert result.exit_code == 0, result.output
            (shared / "report-smoke.done").touch()
    return store


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run_into(store: Path, spec: str, task: str = "sphere-10", seed: int = 0, budget: int = 12) -> None:
    result = invoke(
        "run", task, spec, "--size", "smoke", "--budget", str(budget), "--seed", str(seed), "--store", str(store)
    )
    assert result.exit_code == 0, result.output


# --------------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------------


def test_report_of_the_smoke_store_has_every_section_with_its_figures(smoke_store, tmp_path):
    out = tmp_path / "smoke.html"
    result = invoke("report", str(smoke_store), "-o", str(out), "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"store": str(smoke_store), "output": str(out), "runs": 56, "tasks": 4}
    page = out.read_text()
    for section, figures in (("summary", 0), ("tasks", 0), ("sensitivity", 1), ("across", 4)):
        assert f'data-section="{section}" data-figures="{figures}"' in page
    assert page.count('<img src="data:image/png;base64,') == 4 + 1 + 4  # one per task, sensitivity, across tasks
    # the table's numbers are the summary's: same methods in the same order (best mean regret first)
    summary = json.loads(invoke("summary", str(smoke_store), "--json").stdout)
    positions = [page.index(f'title="{html.escape(method)}"') for method in summary["methods"]]
    assert positions == sorted(positions)
    assert "http://" not in page and "https://" not in page  # nothing that could reach the network
    assert 'data-section="tuning"' not in page  # a store without a tuner's trials shows no empty section


def test_report_filters_tasks_and_methods(smoke_store, tmp_path):
    out = tmp_path / "f.html"
    result = invoke(
        "report", str(smoke_store), "-o", str(out), "--tasks", "iris-logreg,sphere-10", "--methods", "prodigy"
    )
    assert result.exit_code == 0, result.output
    page = out.read_text()
    assert "4 runs · 2 task(s) · 1 method(s)" in page
    bad = invoke("report", str(smoke_store), "-o", str(tmp_path / "g.html"), "--tasks", "iris")
    assert bad.exit_code == 2 and "no task 'iris'" in _one_line_error(bad)
    assert not (tmp_path / "g.html").exists()


def test_report_plot_and_export_never_overwrite_the_store(smoke_store, tmp_path):
    # stores whose names would pass as outputs
    store, image_store, long_store = tmp_path / "s.html", tmp_path / "s.png", tmp_path / "s.steps.parquet"
    for copy in (store, image_store, long_store):
        shutil.copy(smoke_store, copy)
    before = _digest(store)
    for args in (
        ("report", str(store), "-o", str(store)),
        ("plot", str(image_store), "--kind", "lr", "-o", str(image_store)),
        ("export", str(long_store), "--long", "-o", str(tmp_path / "s.parquet")),
    ):
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        assert "is an input of this command" in _one_line_error(result)
    assert _digest(store) == _digest(image_store) == _digest(long_store) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.html", "s.png", "s.steps.parquet"]


def test_empty_missing_and_foreign_stores_fail_with_one_line(tmp_path):
    Store(tmp_path / "empty.db").close()
    (tmp_path / "notes.db").write_text("not a store")
    cases = [
        (("report", str(tmp_path / "empty.db"), "-o", str(tmp_path / "r.html")), "holds no finished runs"),
        (("plot", str(tmp_path / "empty.db"), "--kind", "lr", "-o", str(tmp_path / "r.png")), "holds no finished runs"),
        (("export", str(tmp_path / "empty.db"), "--long"), "nothing to export"),
        (("report", str(tmp_path / "missing.db"), "-o", str(tmp_path / "r.html")), "no store at"),
        (("plot", str(tmp_path / "missing.db"), "--kind", "cost", "-o", str(tmp_path / "r.svg")), "no store at"),
        (("report", str(tmp_path / "notes.db"), "-o", str(tmp_path / "r.html")), "not an lrcontrol store"),
        (("plot", str(tmp_path / "empty.db"), "--kind", "pie", "-o", str(tmp_path / "r.png")), "unknown --kind 'pie'"),
        (("report", str(tmp_path / "empty.db"), "-o", str(tmp_path / "r.txt")), "must end in .html"),
    ]
    for args, message in cases:
        result = invoke(*args)
        assert result.exit_code == 2, (args, result.output)
        assert message in _one_line_error(result), args
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("empty.db")) == ["notes.db"]


def test_one_task_store_draws_every_kind(tmp_path):
    store = tmp_path / "one.db"
    for spec in ("adam(lr=0.1) + constant()", "adam(lr=0.01) + constant()", "sgd(lr=0.05) + cosine()"):
        _run_into(store, spec)
    assert invoke("report", str(store), "-o", str(tmp_path / "one.html")).exit_code == 0
    for kind in KINDS:
        result = invoke("plot", str(store), "--kind", kind, "-o", str(tmp_path / f"{kind}.png"))
        assert result.exit_code == 0, (kind, result.output)


def test_only_diverged_store_reports_what_it_can_and_refuses_scores(tmp_path):
    store = tmp_path / "div.db"
    for seed in (0, 1):
        _run_into(store, "sgd(lr=10) + constant()", task="rosenbrock-10", seed=seed)
    result = invoke("report", str(store), "-o", str(tmp_path / "div.html"))
    assert result.exit_code == 0, result.output
    assert "Every run diverged" in (tmp_path / "div.html").read_text()
    for kind in ("lr", "loss", "sensitivity"):  # the curves up to divergence, and where it diverged
        assert invoke("plot", str(store), "--kind", kind, "-o", str(tmp_path / f"{kind}.png")).exit_code == 0
    for kind in ("profile", "heatmap", "cost"):  # no score exists to compare
        result = invoke("plot", str(store), "--kind", kind, "-o", str(tmp_path / f"{kind}.png"))
        assert result.exit_code == 2 and "every run" in _one_line_error(result)
        assert not (tmp_path / f"{kind}.png").exists()


# --------------------------------------------------------------------------------------------------
# plot, run --plot
# --------------------------------------------------------------------------------------------------


def _assert_png(path: Path) -> None:
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = imread(path)
    assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 300
    assert image[..., :3].std() > 0.05  # something is drawn, not a blank canvas


def _assert_svg(path: Path) -> None:
    root = ET.parse(path).getroot()
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert len(root.findall(".//{http://www.w3.org/2000/svg}path")) > 10


@pytest.mark.parametrize("kind", KINDS)
def test_plot_each_kind_writes_a_valid_image(smoke_store, tmp_path, kind):
    png, svg = tmp_path / f"{kind}.png", tmp_path / f"{kind}.svg"
    for path in (png, svg):
        result = invoke("plot", str(smoke_store), "--kind", kind, "-o", str(path))
        assert result.exit_code == 0, result.output
    _assert_png(png)
    _assert_svg(svg)


def test_run_plot_draws_that_run(tmp_path):
    path = tmp_path / "run.png"
    result = invoke(
        "run", "sphere-10", "adam(lr=0.1) + cosine()", "--size", "smoke", "--budget", "15", "--plot", str(path)
    )
    assert result.exit_code == 0, result.output
    _assert_png(path)
    bad = invoke(
        "run", "sphere-10", "adam(lr=0.1)", "--size", "smoke", "--budget", "5", "--plot", str(tmp_path / "r.txt")
    )
    assert bad.exit_code == 2 and "must end in .png" in _one_line_error(bad)


# --------------------------------------------------------------------------------------------------
# export --long
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_long_export_rows_match_the_trajectories(smoke_store, tmp_path, fmt):
    import pandas as pd

    base = tmp_path / f"smoke.{fmt}"
    result = invoke("export", str(smoke_store), "--long", "--format", fmt, "-o", str(base), "--json")
    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout)
    read = pd.read_parquet if fmt == "parquet" else pd.read_csv
    steps, evals = read(counts["steps"]), read(counts["evals"])
    with Store(smoke_store, create=False) as db:
        records = db.records()
    expected_steps = sum(len(r["trajectory"]["train_steps"]) * len(r["trajectory"]["lrs"][0]) for r in records)
    expected_evals = sum(len(v) for r in records for v in r["trajectory"]["val"])
    assert (len(steps), len(evals), counts["runs"]) == (expected_steps, expected_evals, len(records))
    assert list(steps.columns) == [
        "key",
        "task",
        "method",
        "seed",
        "spec_lr",
        "step",
        "group",
        "lr",
        "effective_lr",
        "train_loss",
    ]
    # one run, read back: its steps, LRs and losses in order
    run = records[0]
    mine = steps[steps.key == run["key"]].sort_values("step")
    assert mine.step.tolist() == run["trajectory"]["train_steps"]
    assert mine.train_loss.tolist() == pytest.approx(run["trajectory"]["train_loss"])
    assert mine.effective_lr.tolist() == pytest.approx([g[0] for g in run["trajectory"]["effective_lrs"]])
    assert set(evals.metric) >= {"loss"}
    assert not any(name.startswith(".") for name in os.listdir(tmp_path))  # no temporary file left behind


# --------------------------------------------------------------------------------------------------
# the report in a real browser
# --------------------------------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",  # the CI container runs as root
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-gpu",
]


def _browser_or_skip():
    # `make test` sets LRCONTROL_REQUIRE_BROWSER=1 and installs both, so in CI a missing browser fails
    required = os.environ.get("LRCONTROL_REQUIRE_BROWSER") == "1"
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if required:
            raise
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")
    if not Path(CHROMIUM).exists():
        if required:
            pytest.fail(f"{CHROMIUM} is missing; `make test` installs it (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium)")
    return sync_playwright


def test_report_renders_offline_in_chromium_with_every_figure(smoke_store, tmp_path):
    sync_playwright = _browser_or_skip()
    out = tmp_path / "smoke.html"
    assert invoke("report", str(smoke_store), "-o", str(out)).exit_code == 0
    errors, requests = [], []
    with sync_playwright() as playwright:
        # a fresh profile directory: nothing cached or synced from an earlier run
        browser = playwright.chromium.launch_persistent_context(
            str(tmp_path / "profile"),
            executable_path=CHROMIUM,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 900},
        )
        try:
            browser.on("request", lambda request: requests.append(request.url))
            page = browser.new_page()
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(out.as_uri(), wait_until="load")
            sections = page.eval_on_selector_all(
                "section[data-section]",
                """nodes => nodes.map(s => ({
                    id: s.dataset.section,
                    figures: Number(s.dataset.figures),
                    rendered: Array.from(s.querySelectorAll(':scope > figure img, :scope > h3 + figure img'))
                        .filter(i => i.complete && i.naturalWidth > 100 && i.getBoundingClientRect().width > 100).length,
                }))""",
            )
            # sorting the summary table by a column (the optional script) reorders its rows
            first_cells = "Array.from(document.querySelectorAll('table.sortable tbody tr td:first-child')).map(c => c.textContent)"
            before = page.evaluate(first_cells)
            page.click("table.sortable th:first-child")
            after = page.evaluate(first_cells)
            # the listener does see a request: the same page with one remote image reports it
            probe = tmp_path / "probe.html"
            probe.write_text(out.read_text().replace("</main>", '<img src="http://127.0.0.1:9/probe.png"></main>'))
            probe_page = browser.new_page()
            probe_page.goto(probe.as_uri(), wait_until="load")
        finally:
            browser.close()
    assert errors == []
    assert "http://127.0.0.1:9/probe.png" in requests
    requests = [url for url in requests if url not in (out.as_uri(), probe.as_uri(), "http://127.0.0.1:9/probe.png")]
    assert requests == []  # no network request from the report, not even for a font
    by_id = {s["id"]: s for s in sections}
    assert {"summary", "tasks", "sensitivity", "across"} <= set(by_id)
    task_sections = [s for s in sections if s["id"].startswith("task-")]
    assert len(task_sections) == 4
    for section in sections:
        assert section["rendered"] == section["figures"], section
    assert by_id["across"]["figures"] == 4 and by_id["sensitivity"]["figures"] == 1
    assert all(s["figures"] == 1 for s in task_sections)
    assert sorted(before) == after != before


def test_quartiles_ignore_nan_like_numpy():
    import warnings

    import numpy as np

    from lrcontrol.report.data import quartiles

    rng = np.random.default_rng(0)
    grid = rng.normal(size=(7, 60))
    grid[rng.random(grid.shape) < 0.3] = np.nan  # seeds that diverged (or were not evaluated) at a step
    grid[1:, 0], grid[0, 0] = np.nan, 0.5  # a step only one seed reached
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = np.nanquantile(grid, [0.25, 0.5, 0.75], axis=0)
    assert np.allclose(np.array(quartiles(grid)), expected)
    full = rng.normal(size=(3, 10))
    assert np.allclose(np.array(quartiles(full)), np.quantile(full, [0.25, 0.5, 0.75], axis=0))


def test_report_shows_tuning_traces_when_the_store_has_a_tuners_trials(tmp_path):
    store = tmp_path / "t.db"
    result = invoke(
        "tune", "sphere-10", "adam(lr=loguniform(1e-3, 1))", "--trials", "6", "--strategy", "hyperband",
        "--size", "smoke", "--budget", "27", "--min-budget", "3", "--store", str(store), "--workers", "1",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    _run_into(store, "adam(lr=0.1) + constant()", budget=27)
    out = tmp_path / "t.html"
    assert invoke("report", str(store), "-o", str(out)).exit_code == 0
    page = out.read_text()
    assert 'data-section="tuning" data-figures="1"' in page
    from lrcontrol.report.data import load
    from lrcontrol.report.tuning import traces

    with load(store) as data:
        (trace,) = traces(data)["sphere-10@1/smoke"]
    with Store(store, create=False) as db:
        trials = db.query("SELECT steps, budget, horizon, final_metric FROM trials ORDER BY finished_at, key")
    assert len(trace["cost"]) == len(trials) and trace["cost"] == sorted(trace["cost"])
    full = [t["final_metric"] for t in trials if t["budget"] == t["horizon"]]
    assert trace["incumbent"][-1] == min(full)  # regret: lower is better
