"""Each teaching function of ``vae_utils`` names the notebook that introduces it, which comes first."""

import importlib
import inspect
import json
import re

import pytest

from vae_utils import run

TEACHING_MODULES = (
    "models",
    "likelihoods",
    "losses",
    "evaluate",
    "latent",
    "plotting",
    "pixel_mixture",
    "m2",
    "training",
    "data.batches",
)
NOTE = re.compile(r"(Introduced|[Ww]ritten out) in notebook (\d\d)\b")


def _cells(number):
    (path,) = [p for p in run.notebooks() if p.name.startswith(f"{number}_")]
    cells = json.loads(path.read_text())["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


CELLS = {p.name[:2]: _cells(p.name[:2]) for p in run.notebooks()}
CODE = {number: "\n".join(cells) for number, cells in CELLS.items()}


def written_out(cells: list[str], module_name: str, name: str) -> bool:
    """The notebook writes ``module.name`` out: it defines a function or class of that name, or a cell of
    it checks ``module.name`` against a function or class the notebook defines (under its own name)."""
    code = "\n".join(cells)
    if re.search(rf"^(?:def|class) {name}\b", code, re.M):
        return True
    own = re.findall(r"^(?:def|class) (\w+)", code, re.M)
    return any(
        re.search(rf"\b{module_name}\.{name}\b", cell) and any(re.search(rf"\b{o}\b", cell) for o in own)
        for cell in cells
    )


def _public(module_name):
    module = importlib.import_module(f"vae_utils.{module_name}")
    for name in module.__all__:
        obj = getattr(module, name)
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and obj.__module__ == module.__name__:
            yield module_name, name, obj


@pytest.mark.parametrize(
    "module_name, name, obj",
    [item for m in TEACHING_MODULES for item in _public(m)],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_the_docstring_names_the_notebook_that_introduces_it(module_name, name, obj):
    notes = NOTE.findall(inspect.getdoc(obj) or "")
    assert len(notes) == 1, f"{module_name}.{name}: expected one 'Introduced/Written out in notebook NN.'"
    how, number = notes[0]
    assert number in CODE, f"{module_name}.{name} names notebook {number}, which does not exist"
    used = [nb for nb, code in sorted(CODE.items()) if re.search(rf"\b{module_name}\.{name}\b", code)]
    assert not used or number <= used[0], f"{module_name}.{name}: named {number}, used first in {used[0]}"
    if how.lower() == "written out":
        assert written_out(CELLS[number], module_name, name), f"notebook {number} does not write out {name}"


def test_a_notebook_that_only_calls_a_function_does_not_write_it_out():
    called = ["from vae_utils import losses", "kl = losses.gaussian_kl(mu, log_var)"]
    assert not written_out(called, "losses", "gaussian_kl")
    assert written_out([*called, "def gaussian_kl(mu, log_var):\n    return 0"], "losses", "gaussian_kl")
    own = [
        "def kl(mu, log_var):\n    return 0",
        "np.testing.assert_allclose(kl(m, v), losses.gaussian_kl(m, v))",
    ]
    assert written_out(own, "losses", "gaussian_kl")
    apart = ["def kl(mu, log_var):\n    return 0", "kl(m, v)", "losses.gaussian_kl(m, v)"]
    assert not written_out(apart, "losses", "gaussian_kl")


def _public_everywhere():
    import pkgutil

    import vae_utils

    for info in pkgutil.walk_packages(vae_utils.__path__, "vae_utils."):
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if name.startswith("_"):
                continue
            if not (inspect.isfunction(obj) or inspect.isclass(obj)) or obj.__module__ != module.__name__:
                continue
            yield f"{info.name}.{name}", obj
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if inspect.isfunction(member) and not attr.startswith("_"):
                        yield f"{info.name}.{name}.{attr}", member


def test_every_public_docstring_is_at_most_three_lines():
    """The details live in the module's docstring and the derivations in the notebooks."""
    long = {
        name: len(inspect.cleandoc(obj.__doc__).splitlines())
        for name, obj in _public_everywhere()
        if obj.__doc__ and len(inspect.cleandoc(obj.__doc__).splitlines()) > 3
    }
    assert not long, f"docstrings over 3 lines: {long}"
