"""Each figure draws the panels it promises and refuses data of the wrong shape."""

import matplotlib.pyplot as plt
import numpy as np
import pytest

from vae_utils import plotting


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _panels_with_images(fig):
    return sum(1 for ax in fig.axes if ax.images)


@pytest.mark.parametrize("shape", [(23, 8, 8), (23, 8, 8, 1), (23, 8, 8, 3)])
def test_image_grid_draws_one_panel_per_image(shape):
    fig = plotting.image_grid(np.random.default_rng(0).random(shape), n_cols=5)
    assert len(fig.axes) == 25 and _panels_with_images(fig) == 23


def test_image_grid_rejects_a_single_flat_image():
    with pytest.raises(ValueError, match=r"batch of images .* found shape \(64,\)"):
        plotting.image_grid(np.zeros(64))


def test_reconstructions_pair_inputs_with_outputs():
    x = np.zeros((12, 8, 8))
    fig = plotting.reconstructions(x, x + 0.5, n=6)
    assert _panels_with_images(fig) == 12
    np.testing.assert_allclose(fig.axes[6].images[0].get_array(), 0.5)  # second row: reconstructions


def test_reconstructions_refuse_mismatched_shapes():
    with pytest.raises(ValueError, match="differ in shape"):
        plotting.reconstructions(np.zeros((3, 8, 8)), np.zeros((3, 4, 4)))


def test_latent_manifold_decodes_prior_quantiles_into_one_canvas():
    seen = []

    def decode(z):
        seen.append(z)
        return np.tile(z[:, :1, None], (1, 4, 5))  # each image is filled with its z_1

    fig = plotting.latent_manifold(decode, n=6, image_shape=(4, 5))
    (z,) = seen
    assert z.shape == (36, 2)
    assert np.allclose(np.sort(np.unique(z[:, 0])), -np.sort(np.unique(z[:, 0]))[::-1])  # symmetric
    canvas = fig.axes[0].images[0].get_array()
    assert canvas.shape == (24, 30)
    # z_1 grows from left to right across the columns of images
    assert canvas[0, 0] < canvas[0, -1] and canvas[0, 0] == canvas[-1, 0]


def test_latent_scatter_draws_every_point_and_checks_shapes():
    z = np.random.default_rng(1).normal(size=(300, 2))
    fig = plotting.latent_scatter(z, np.arange(300) % 10)
    assert sum(len(c.get_offsets()) for c in fig.axes[0].collections) == 300
    with pytest.raises(ValueError, match=r"codes of shape \(n, 2\), found \(300, 3\)"):
        plotting.latent_scatter(np.zeros((300, 3)), np.zeros(300))
    with pytest.raises(ValueError, match="300 codes but 299 labels"):
        plotting.latent_scatter(z, np.zeros(299))


def test_training_curves_draw_one_panel_per_metric_with_validation():
    history = {"loss": [3, 2, 1], "kl": [1, 2, 2], "val_loss": [3.5, 2.5, 1.5]}
    fig = plotting.training_curves(history)
    assert len(fig.axes) == 2
    assert len(fig.axes[0].lines) == 2 and len(fig.axes[1].lines) == 1  # loss has a validation curve
