"""The latent explorer: the export of a 2-D decoder (``vae_utils.explorer``) and the page that decodes it
(``docs/_extra/explorer/``), opened from ``file://`` in headless Chromium and read back from its canvas."""

import importlib.util
import json
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest

from vae_utils import explorer, models, repro

from .browser import Browser

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "_extra" / "explorer"
# five latent positions: the origin, four points out to the edge of the prior's mass
POSITIONS = [(0.0, 0.0), (1.3, -0.4), (-2.1, 1.7), (0.6, 2.4), (-1.0, -2.8)]


def _lay_out(site: Path) -> Path:
    """The page's files where ``make site`` puts them: ``explorer/`` beside ``_static/`` (its icon)."""
    shutil.copytree(PAGE, site / "explorer")
    (site / "_static").mkdir()
    shutil.copy(ROOT / "docs" / "_static" / "favicon.svg", site / "_static")
    return site / "explorer"


def _explorer_data():
    spec = importlib.util.spec_from_file_location("explorer_data", ROOT / "docs" / "explorer_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _vae(image_shape, hidden, likelihood, seed):
    """A VAE whose decoder's weights are large enough that the image changes across the plane."""
    keras.utils.set_random_seed(seed)
    vae = models.VAE(
        models.dense_encoder(image_shape, 2, hidden=hidden),
        models.dense_decoder(2, image_shape, hidden=hidden, likelihood=likelihood),
        likelihood=likelihood,
    )
    rng = np.random.default_rng(seed)
    for layer in vae.decoder.layers[1:-1]:
        fan_in = layer.kernel.shape[0]
        layer.kernel.assign(rng.normal(0, 1.5 / np.sqrt(fan_in), layer.kernel.shape).astype("float32"))
    if likelihood == "logistic":  # locations around grey 0.5
        bias = keras.ops.convert_to_numpy(vae.decoder.layers[-2].bias).copy()
        bias[0::2] = 0.5
        vae.decoder.layers[-2].bias.assign(bias)
    return vae


def _shown(vae, z):
    """What the trained decoder shows at codes ``z``, in [0, 1]: the notebooks' ``VAE.decode``."""
    return vae.decode(np.asarray(z, dtype="float32")).reshape(len(z), -1)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Two exports as the notebooks make them (digits with labels; faces, logistic, without), and the VAEs."""
    out = tmp_path_factory.mktemp("run")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VAE_OUTPUT_DIR", str(out))
        patch.delenv("VAE_STAGING_DIR", raising=False)
        run = repro.Run("01_vae_mnist", seed=0, smoke=True)
        digits = _vae((28, 28), (64, 64), "bernoulli", 0)
        faces = _vae((28, 20, 1), (32,), "logistic", 1)
        rng = np.random.default_rng(0)
        paths = {
            "mnist": explorer.export(
                run,
                "mnist",
                digits,
                rng.normal(size=(500, 2)),
                labels=rng.integers(0, 10, 500),
                title="MNIST digits",
                settings={"epochs": 0},
            ),
            "frey": explorer.export(
                run,
                "frey",
                faces,
                rng.normal(size=(200, 2)),
                title="Frey faces",
                settings={},
                likelihood="logistic",
            ),
        }
    return paths, {"mnist": digits, "frey": faces}


def test_the_exported_chain_is_the_trained_decoder(exported):
    paths, vaes = exported
    z = np.random.default_rng(3).normal(size=(50, 2)).astype("float32")
    for name, vae in vaes.items():
        chain = explorer.dense_chain(vae.decoder, vae.likelihood)
        output = explorer.OUTPUTS[vae.likelihood]
        np.testing.assert_allclose(explorer.decode(chain, z, output), _shown(vae, z), atol=1e-5)
        payload = json.loads(paths[name].read_text())
        stored = explorer.chain_from_json(payload)
        assert all(k.dtype == np.float16 for k, _, _ in stored)
        error = np.abs(explorer.decode(stored, z, output) - _shown(vae, z)).max()
        assert 0 < error < 1 / 255 and payload["float16_error"]["max"] < 1 / 255
        assert (
            payload["provenance"]["notebook"] == "01_vae_mnist"
            and len(payload["provenance"]["identity"]) == 12
        )
        assert explorer.array_from_json(payload["codes"]).shape == ((500, 2) if name == "mnist" else (200, 2))


def test_an_export_refuses_what_the_page_cannot_show(exported, tmp_path, monkeypatch):
    _, vaes = exported
    monkeypatch.setenv("VAE_OUTPUT_DIR", str(tmp_path))
    run = repro.Run("01_vae_mnist", seed=0, smoke=True)
    with pytest.raises(ValueError, match=r"shape \(n, 2\), found shape \(10, 3\)"):
        explorer.export(run, "x", vaes["mnist"], np.zeros((10, 3)), title="x", settings={})
    with pytest.raises(ValueError, match="labels must be integers"):
        explorer.export(
            run, "x", vaes["mnist"], np.zeros((10, 2)), labels=np.zeros(9, int), title="x", settings={}
        )
    wide = models.VAE(
        models.dense_encoder((28, 28), 3, hidden=(8,)), models.dense_decoder(3, (28, 28), hidden=(8,))
    )
    with pytest.raises(ValueError, match="2-D latent space"):
        explorer.export(run, "x", wide, np.zeros((10, 2)), title="x", settings={})
    with pytest.raises(ValueError, match="likelihood must be one of"):
        explorer.dense_chain(vaes["mnist"].decoder, "logistic_mixture")
    assert not list(tmp_path.rglob("*explorer_x*")), "a refused export left a file behind"


@pytest.fixture(scope="module")
def page(exported, tmp_path_factory):
    """The explorer page with the two exports, as ``make site`` lays it out, opened from file://."""
    paths, _ = exported
    site = _lay_out(tmp_path_factory.mktemp("site"))
    index = _explorer_data().write(list(paths.values()), site / "data")
    assert [entry["name"] for entry in index] == ["frey", "mnist"]
    browser = Browser(width=1100, height=900)
    yield browser, site
    browser.close()


def _open(browser, site, name):
    browser.open("about:blank")  # else a new #name is a jump within the page open now, not a load
    browser.open((site / "index.html").as_uri() + f"#{name}")
    browser.evaluate("latentExplorer.ready")
    assert browser.evaluate("latentExplorer.model") == name


@pytest.mark.integration
@pytest.mark.parametrize("name", ["mnist", "frey"])
def test_the_page_draws_what_the_trained_decoder_decodes(page, exported, name):
    browser, site = page
    _open(browser, site, name)
    vae = exported[1][name]
    for z in POSITIONS:
        browser.evaluate(f"latentExplorer.setLatent({z[0]}, {z[1]})")
        drawn = np.array(browser.evaluate("latentExplorer.pixels()"), dtype=float)
        expected = 255 * _shown(vae, [z])[0]
        assert drawn.shape == expected.shape, (
            f"{name}: the page draws {drawn.shape} pixels, expected {expected.shape}"
        )
        worst = np.abs(drawn - expected).max()
        assert worst <= 2, f"{name} at z={z}: a pixel is {worst:.1f} grey levels from the trained decoder's"
        assert np.ptp(drawn) > 20, f"{name} at z={z}: a flat image (the test decoder should vary)"
    assert browser.errors == []


@pytest.mark.integration
def test_dragging_clicking_and_the_arrow_keys_move_the_point_and_change_the_image(page):
    browser, site = page
    _open(browser, site, "mnist")
    box = browser.evaluate(
        "(() => { const r = document.getElementById('latent').getBoundingClientRect();"
        " return [r.left, r.top, r.width]; })()"
    )
    left, top, width = box
    before = browser.evaluate("latentExplorer.pixels()")
    mouse = {"button": "left", "buttons": 1, "clickCount": 1}
    browser.send(
        "Input.dispatchMouseEvent", type="mousePressed", x=left + width / 2, y=top + width / 2, **mouse
    )
    for step in range(1, 6):  # drag towards the top right
        x, y = left + width / 2 + 30 * step, top + width / 2 - 20 * step
        browser.send("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y, **mouse)
    browser.send("Input.dispatchMouseEvent", type="mouseReleased", x=x, y=y, **mouse)
    z1, z2 = browser.evaluate("latentExplorer.latent")
    assert z1 > 0.5 and z2 > 0.3, f"a drag up and right moved the point to {z1, z2}"
    assert browser.evaluate("latentExplorer.pixels()") != before, "the drag did not change the image"
    shown = browser.evaluate("document.getElementById('coordinates').textContent")
    assert shown == f"z = ({z1:.2f}, {z2:.2f})", shown
    browser.send(
        "Input.dispatchKeyEvent",
        type="rawKeyDown",
        key="ArrowLeft",
        code="ArrowLeft",
        windowsVirtualKeyCode=37,
    )
    assert browser.evaluate("latentExplorer.latent")[0] == pytest.approx(z1 - 0.05)
    browser.send("Emulation.setTouchEmulationEnabled", enabled=True, maxTouchPoints=1)
    try:
        point = {"x": left + width / 4, "y": top + 3 * width / 4}
        browser.send("Input.dispatchTouchEvent", type="touchStart", touchPoints=[point])
        browser.send("Input.dispatchTouchEvent", type="touchEnd", touchPoints=[])
    finally:
        browser.send("Emulation.setTouchEmulationEnabled", enabled=False)
    z1, z2 = browser.evaluate("latentExplorer.latent")
    assert z1 < -0.5 and z2 < -0.5, f"a touch at the bottom left moved the point to {z1, z2}"
    assert browser.errors == []


@pytest.mark.integration
def test_the_page_without_exports_says_so(tmp_path):
    site = _lay_out(tmp_path)
    _explorer_data().write([], site / "data")
    browser = Browser()
    try:
        browser.open((site / "index.html").as_uri())
        browser.evaluate("latentExplorer.ready")
        assert "No decoder has been exported yet" in browser.evaluate(
            "document.getElementById('status').textContent"
        )
        assert browser.errors == []
    finally:
        browser.close()
