"""Each teaching function of ``vae_utils`` names the notebook that introduces it, which comes first."""

import importlib
import inspect
import json
import re

import pytest

from vae_utils import run

TEACHING_MODULES = ("models", "losses", "evaluate", "latent", "plotting", "pixel_mixture", "m2", "training")
NOTE = re.compile(r"(Introduced|[Ww]ritten out) in notebook (\d\d)\b")


def _code(number):
    (path,) = [p for p in run.notebooks() if p.name.startswith(f"{number}_")]
    cells = json.loads(path.read_text())["cells"]
    return "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")


CODE = {p.name[:2]: _code(p.name[:2]) for p in run.notebooks()}


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
        defined = re.search(rf"^(?:def|class) {name}\b", CODE[number], re.M)
        checked = re.search(rf"\b{module_name}\.{name}\b", CODE[number])
        assert defined or checked, f"notebook {number} neither writes out nor calls {module_name}.{name}"
