"""Project metadata: the citation file against its schema, and the licence."""

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
#: ``make`` downloads the wheel of cffconvert, which ships the Citation File Format schema (not installed:
#: its pins would downgrade jsonschema).
CFF_WHEEL = Path(sys.prefix) / "share" / "schemas" / "cffconvert-2.0.0-py3-none-any.whl"


@pytest.fixture(scope="module")
def cff_validator():
    if not CFF_WHEEL.is_file():
        pytest.fail(f"{CFF_WHEEL} is missing: run make, which downloads it next to the environment")
    with zipfile.ZipFile(CFF_WHEEL) as wheel:
        schema = json.loads(wheel.read("cffconvert/schemas/1.2.0/schema.json"))
    validator = jsonschema.validators.validator_for(schema)
    validator.check_schema(schema)
    return validator(schema)


def test_citation_file_is_valid_cff_1_2_0_and_agrees_with_pyproject(cff_validator):
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in cff_validator.iter_errors(citation)
    ]
    assert errors == []
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert citation["version"] == project["version"]
    assert citation["license"] == project["license"]["text"] == "MIT"


@pytest.mark.parametrize(
    "change",
    [{"authors": []}, {"cff-version": "1.9"}, {"title": None}],
    ids=["no authors", "version", "title"],
)
def test_the_schema_check_refuses_a_broken_citation_file(cff_validator, change):
    citation = {**yaml.safe_load((ROOT / "CITATION.cff").read_text()), **change}
    assert list(cff_validator.iter_errors(citation))


def test_licence_covers_code_prose_and_figures():
    licence = (ROOT / "LICENSE").read_text()
    assert licence.startswith("MIT License")
    assert "CC BY 4.0" in licence and "figures" in licence and "data/README.md" in licence


def test_make_lab_serves_the_notebooks(tmp_path):
    # make -n prints the recipes without running them (the environment's too, where it is out of date)
    printed = subprocess.run(
        ["make", "-n", "lab", f"PY={sys.executable}", "LAB_ARGS=--no-browser"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    (recipe,) = [line for line in printed if "-m jupyterlab" in line]
    assert recipe == f"{sys.executable} -m jupyterlab --notebook-dir=notebooks --no-browser"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    args = [
        f"--port={port}",
        "--ip=127.0.0.1",
        "--IdentityProvider.token=",
        "--allow-root",
        "--ServerApp.password=",
        "--ServerApp.disable_check_xsrf=True",
        "--ServerApp.open_browser=False",
    ]
    env = {**os.environ, "JUPYTER_RUNTIME_DIR": str(tmp_path), "JUPYTER_CONFIG_DIR": str(tmp_path)}
    server = subprocess.Popen(
        shlex.split(recipe) + args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        listing = None
        for _ in range(120):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents", timeout=2) as response:
                    listing = json.load(response)
                break
            except OSError:
                time.sleep(0.5)
        assert listing is not None, "JupyterLab did not answer within 60 s"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab", timeout=10) as response:
            assert response.status == 200 and b"JupyterLab" in response.read()
    finally:
        server.terminate()
        server.wait(timeout=30)
    names = {item["name"] for item in listing["content"]}
    assert {p.name for p in (ROOT / "notebooks").glob("[0-9]*.ipynb")} <= names


@pytest.fixture(scope="module")
def wheel_metadata(wheel):
    with zipfile.ZipFile(wheel) as archive:
        (name,) = [n for n in archive.namelist() if n.endswith(".dist-info/METADATA")]
        return archive.read(name).decode(), archive.namelist()


def test_the_wheel_requires_no_backend_so_that_it_keeps_the_one_installed(wheel_metadata):
    metadata, files = wheel_metadata
    requires = [
        line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Requires-Dist:")
    ]
    plain = [r for r in requires if "extra ==" not in r]
    assert any(r.startswith("keras") for r in plain)
    assert not [r for r in plain if re.match(r"(tensorflow|jax|torch)", r)]
    extras = {
        line.split(":", 1)[1].strip() for line in metadata.splitlines() if line.startswith("Provides-Extra:")
    }
    assert {"cpu", "tf-gpu", "jax-gpu"} <= extras
    assert "vae_utils/data/registry.py" in files  # the data package is in the wheel


EXTRAS = {"cpu": "tensorflow-cpu", "tf-gpu": "nvidia-cudnn-cu12", "jax-gpu": "jax-cuda12-plugin"}


@pytest.fixture(scope="module")
def resolved_extras(tmp_path_factory):
    """A resolver dry run of the package's requirements with each extra, against the package index: nothing is
    downloaded beyond metadata, nothing installed. The three run at once (95 s together, against about 200 s
    in turn); each names its requirements as pyproject.toml declares them, so no run builds the package."""
    folder = tmp_path_factory.mktemp("extras")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def resolve(extra):
        report = folder / f"{extra}.json"
        command = [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed"]
        command += ["--constraint", ROOT / "requirements.lock", "--report", report]
        command += [*project["dependencies"], *project["optional-dependencies"][extra]]
        done = subprocess.run(command, capture_output=True, text=True)
        return done, report

    with ThreadPoolExecutor(len(EXTRAS)) as pool:
        return dict(zip(EXTRAS, pool.map(resolve, EXTRAS)))


@pytest.mark.integration
@pytest.mark.parametrize("extra", EXTRAS)
def test_each_backend_extra_resolves_with_the_locked_versions(extra, resolved_extras):
    done, report = resolved_extras[extra]
    assert done.returncode == 0, done.stderr[-2000:]
    installs = {
        item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    assert EXTRAS[extra] in installs
    locked = dict(
        line.lower().replace("_", "-").split("==")
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if "==" in line and not line.startswith("#")
    )
    assert installs["keras"] == locked["keras"] and installs["numpy"] == locked["numpy"]
