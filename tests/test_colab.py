"""Colab: every badge, launch button and set-up cell names one address and tag, and the set-up cell installs
the package so that its outputs land in the working directory, not in site-packages."""

import os
import re
import runpy
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import nbformat
import pytest

from vae_utils import colab, home

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))
ADDRESS, TAG = colab.release()


def test_the_address_is_set_once_and_the_tag_is_the_package_version():
    import vae_utils

    assert ADDRESS == "https://github.com/vae-step-by-step/vae-notebooks"
    assert TAG == f"v{vae_utils.__version__}"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[nb.stem for nb in NOTEBOOKS])
def test_each_notebook_has_its_badge_first_and_the_setup_cell_before_any_other_code(notebook, tmp_path):
    copy = shutil.copy(notebook, tmp_path / notebook.name)
    assert not colab.sync(copy, ADDRESS, TAG), "out of date: run python -m vae_utils.colab"
    cells = nbformat.read(notebook, as_version=4).cells
    url = f"https://colab.research.google.com/github/vae-step-by-step/vae-notebooks/blob/{TAG}/notebooks/{notebook.name}"
    assert f"]({url})" in cells[0].source and "remove-cell" in cells[0].metadata["tags"]
    first_code = next(c for c in cells if c.cell_type == "code")
    assert f'"vae-utils @ git+{ADDRESS}@{TAG}"' in first_code.source and not first_code.outputs
    # no other Colab link or install of the package anywhere in the notebook
    text = "\n".join(c.source for c in cells)
    named = set(re.findall(r"colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)/blob/([\w.-]+)/", text))
    named |= set(re.findall(r"git\+https://github\.com/([\w.-]+/[\w.-]+)@([\w.-]+)", text))
    assert named == {("vae-step-by-step/vae-notebooks", TAG)}, named


def test_the_sites_launch_and_repository_buttons_name_the_same_address_and_tag(tmp_path, monkeypatch):
    (tmp_path / "tex-mml-chtml.js").write_text("")
    monkeypatch.setenv("MATHJAX_DIR", str(tmp_path))
    conf = runpy.run_path(str(ROOT / "docs" / "conf.py"))
    options = conf["html_theme_options"]
    assert options["repository_url"] == ADDRESS and options["repository_branch"] == TAG
    assert options["launch_buttons"]["colab_url"] == "https://colab.research.google.com"


def test_a_release_address_that_is_not_a_github_repository_is_refused(tmp_path):
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nversion = "1.0"\n[project.urls]\nRepository = "https://example.org/x"\n'
    )
    with pytest.raises(
        ValueError, match=r"must be https://github.com/<owner>/<name>, found 'https://example"
    ):
        colab.release(tmp_path / "pyproject.toml")


@pytest.mark.integration
def test_on_colab_the_setup_cell_installs_the_package_alone_and_runs_write_under_the_working_directory(
    tmp_path, wheel
):
    """The set-up cell, run with a stand-in ``google.colab`` module in a fresh environment that already has
    the dependencies (as Colab has TensorFlow, JAX and the rest), installs a wheel of this package and
    nothing else; the installed package then reads and writes under the working directory."""
    env_dir = tmp_path / "colab"
    subprocess.run([sys.executable, "-m", "venv", env_dir], check=True)
    python = env_dir / "bin" / "python"
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    before = sorted(p.name.split("-")[0] for p in site.glob("*.dist-info"))  # pip, setuptools
    work = tmp_path / "content"
    work.mkdir()
    cell = next(c for c in nbformat.read(NOTEBOOKS[0], as_version=4).cells if c.cell_type == "code").source
    spec = f"vae-utils @ git+{ADDRESS}@{TAG}"
    assert spec in cell
    stand_in = tmp_path / "stand_in" / "google" / "colab"  # google stays a namespace (protobuf is there too)
    stand_in.mkdir(parents=True)
    (stand_in / "__init__.py").write_text('"""A stand-in for Colab\'s module."""\n')
    script = (
        "import google.colab  # as Colab imports it before any cell\n"
        + cell.replace(spec, f"vae-utils @ {wheel.as_uri()}")
        + "\nfrom vae_utils import home, repro\n"
        "print(home.ROOT)\n"
        "repro.Run('01_demo', seed=0, smoke=True).save_metrics({'x': 1.0})\n"
    )
    # the dependencies are there already, as on Colab: this environment's packages, less this one
    deps = tmp_path / "deps"
    deps.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if "vae_utils" not in entry.name and not entry.name.startswith("__editable__"):
            (deps / entry.name).symlink_to(entry)
    environment = {
        **os.environ,
        "PYTHONPATH": f"{tmp_path / 'stand_in'}{os.pathsep}{deps}",
        "PIP_NO_INDEX": "1",
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    environment.pop("VAE_OUTPUT_DIR", None)
    done = subprocess.run(
        [python, "-c", script], cwd=work, env=environment, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert Path(done.stdout.split()[-1]) == work.resolve()
    assert (work / "build" / "smoke" / "results" / "01_demo.json").is_file()
    installed = sorted(p.name.split("-")[0] for p in site.glob("*.dist-info"))
    assert [p for p in installed if p not in before] == ["vae_utils"], f"the cell installed {installed}"
    assert not list(site.glob("vae_utils/**/results")) and not (site / "build").exists()
    assert home.ROOT == ROOT  # here, from the checkout, the repository itself
