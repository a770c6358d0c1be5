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


def _image_shapes(fig):
    return [ax.images[0].get_array().shape for ax in fig.axes if ax.images]


def _row_labels(fig):
    return [text.get_text() for ax in fig.axes for text in ax.texts]


GREY_AND_RGB = [((8, 8), (8, 8)), ((8, 8, 1), (8, 8)), ((8, 8, 3), (8, 8, 3))]  # (given, drawn)


@pytest.mark.parametrize(("image", "drawn"), GREY_AND_RGB)
def test_image_grid_draws_one_panel_per_image(image, drawn):
    fig = plotting.image_grid(np.random.default_rng(0).random((23, *image)), n_cols=5)
    assert len(fig.axes) == 25 and _panels_with_images(fig) == 23
    assert set(_image_shapes(fig)) == {drawn}
    cmaps = {ax.images[0].get_cmap().name for ax in fig.axes if ax.images}
    assert len(drawn) == 3 or cmaps == {"gray"}  # grey images on a grey scale, RGB as colours


def test_image_grid_rejects_a_single_flat_image():
    with pytest.raises(ValueError, match=r"batch of images .* found shape \(64,\)"):
        plotting.image_grid(np.zeros(64))


def test_image_grid_rejects_images_that_are_neither_grey_nor_rgb():
    with pytest.raises(ValueError, match=r"grey \(1 channel\) or RGB \(3 channels\) .* \(4, 8, 8, 2\)"):
        plotting.image_grid(np.zeros((4, 8, 8, 2)))


@pytest.mark.parametrize(("image", "drawn"), GREY_AND_RGB)
def test_reconstructions_pair_inputs_with_outputs(image, drawn):
    x = np.zeros((12, *image))
    fig = plotting.reconstructions(x, x + 0.5, n=6)
    assert _panels_with_images(fig) == 12 and set(_image_shapes(fig)) == {drawn}
    np.testing.assert_allclose(fig.axes[6].images[0].get_array(), 0.5)  # second row: reconstructions


def test_reconstructions_label_the_rows_to_their_left_not_above_a_panel():
    fig = plotting.reconstructions(np.zeros((4, 8, 8)), np.zeros((4, 8, 8)))
    assert all(not ax.get_title(loc) for ax in fig.axes for loc in ("left", "center", "right"))
    assert [t.get_text() for t in fig.axes[0].texts] == ["input"]
    assert [t.get_text() for t in fig.axes[4].texts] == ["reconstruction"]
    label = fig.axes[0].texts[0]
    assert label.get_position()[0] < 0 and label.get_horizontalalignment() == "right"  # left of the panel


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


@pytest.mark.parametrize(("image", "drawn"), GREY_AND_RGB)
def test_interpolation_grid_draws_rows_by_columns_with_labels(image, drawn):
    images = np.random.default_rng(2).random((3, 7, *image))
    fig = plotting.interpolation_grid(
        images, row_labels=["lerp", "slerp", "pixels"], col_labels=range(7), title="horse to car"
    )
    assert len(fig.axes) == 21 and _panels_with_images(fig) == 21
    assert set(_image_shapes(fig)) == {drawn}
    np.testing.assert_allclose(
        fig.axes[7 + 4].images[0].get_array(), images[1, 4].reshape(drawn)
    )  # row-major
    assert _row_labels(fig) == ["lerp", "slerp", "pixels"]
    assert [ax.get_title() for ax in fig.axes[:7]] == [str(j) for j in range(7)]
    assert fig.get_suptitle() == "horse to car"


def test_interpolation_grid_without_labels_draws_only_images():
    fig = plotting.interpolation_grid(np.zeros((2, 2, 4, 4, 3)))
    assert _panels_with_images(fig) == 4 and _row_labels(fig) == []


def test_interpolation_grid_refuses_bad_shapes_and_label_counts():
    with pytest.raises(ValueError, match=r"\(rows, cols, h, w\) .* found shape \(5, 8, 8\)"):
        plotting.interpolation_grid(np.zeros((5, 8, 8)))
    with pytest.raises(ValueError, match=r"grey \(1 channel\) or RGB \(3 channels\)"):
        plotting.interpolation_grid(np.zeros((2, 5, 8, 8, 4)))
    with pytest.raises(ValueError, match="2 rows of images but 3 row labels"):
        plotting.interpolation_grid(np.zeros((2, 5, 8, 8)), row_labels=["a", "b", "c"])
    with pytest.raises(ValueError, match="5 columns of images but 4 column labels"):
        plotting.interpolation_grid(np.zeros((2, 5, 8, 8)), col_labels=range(4))


@pytest.mark.parametrize("image_shape", [(6, 5), (6, 5, 1), (6, 5, 3)])
def test_latent_traversal_decodes_one_code_per_panel(image_shape):
    seen = []
    z = np.random.default_rng(3).normal(size=4).astype("float32")

    def decode(codes):
        seen.append(codes)
        lit = (codes[:, 0] > 0).reshape(-1, *[1] * len(image_shape))  # white when z_0 > 0
        return np.ones((len(codes), *image_shape)) * lit

    values = [-2.0, -0.5, 0.5, 2.0, 3.0]
    fig = plotting.latent_traversal(decode, z, dims=[0, 3], values=values, image_shape=image_shape)
    (codes,) = seen
    assert codes.shape == (10, 4) and codes.dtype == np.float32
    np.testing.assert_array_equal(codes[:5, 0], values)  # the first row sweeps z_0
    np.testing.assert_array_equal(codes[5:, 3], values)  # the second row sweeps z_3
    assert _panels_with_images(fig) == 10
    drawn = image_shape[:2] if image_shape[-1] != 3 else image_shape
    assert set(_image_shapes(fig)) == {drawn}
    assert [ax.images[0].get_array().max() for ax in fig.axes[:5]] == [0, 0, 1, 1, 1]
    assert _row_labels(fig) == ["z_0", "z_3"]
    assert [ax.get_title() for ax in fig.axes[:5]] == ["-2", "-0.5", "0.5", "2", "3"]


def test_latent_traversal_checks_the_decoder_output_and_the_dimensions():
    def decode(codes):
        return np.zeros((len(codes), 4, 4))

    with pytest.raises(
        ValueError, match=r"decode should return 6 images of shape \(5, 5\), found \(6, 4, 4\)"
    ):
        plotting.latent_traversal(decode, np.zeros(3), [0, 1], [0.0, 1.0, 2.0], image_shape=(5, 5))
    with pytest.raises(ValueError, match=r"dim must be an integer in \[0, 3\)"):
        plotting.latent_traversal(decode, np.zeros(3), [3], [0.0], image_shape=(4, 4))
    with pytest.raises(ValueError, match="at least one dimension"):
        plotting.latent_traversal(decode, np.zeros(3), [], [0.0], image_shape=(4, 4))


def test_image_grid_refuses_zero_columns():
    from vae_utils import plotting

    with pytest.raises(ValueError, match="n_cols must be an integer >= 1, found 0"):
        plotting.image_grid(np.zeros((3, 4, 4)), n_cols=0)


def _drawn_levels(fig, ax, margin=3):
    """The red values the figure's pixels take inside ``ax``, as rendered at the dpi figures are saved at."""
    fig.set_dpi(100)
    fig.canvas.draw()
    rgba = np.asarray(fig.canvas.buffer_rgba())
    box = ax.get_window_extent()
    height = rgba.shape[0]  # display coordinates count rows from the bottom
    rows = slice(int(height - box.y1) + margin, int(height - box.y0) - margin)
    cols = slice(int(box.x0) + margin, int(box.x1) - margin)
    return np.unique(rgba[rows, cols, 0])


BOARD = (np.indices((32, 32)).sum(axis=0) % 2).astype("float32")  # black and white pixels in turn


@pytest.mark.parametrize("scale", [0.9, 1.0, 2.3])  # a CIFAR-sized image at about 2.5, 2.8 and 7 screen
def test_panels_show_the_images_own_pixels_not_a_smoothed_copy(scale):  # pixels per image pixel
    # a smoothing filter (matplotlib's default below three screen pixels per image pixel) would draw greys
    fig = plotting.image_grid(np.stack([BOARD, BOARD]), n_cols=2, scale=scale)
    assert set(_drawn_levels(fig, fig.axes[0])) == {0, 255}
    decode = lambda z: np.tile(BOARD.ravel(), (len(z), 1))  # noqa: E731
    fig = plotting.latent_manifold(decode, n=3, image_shape=(32, 32), scale=scale)
    assert set(_drawn_levels(fig, fig.axes[0])) == {0, 255}
