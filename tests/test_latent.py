"""Interpolation paths and traversals: exact ends, the right geometry, clear errors for bad shapes."""

import numpy as np
import pytest

from vae_utils import latent

RNG = np.random.default_rng(0)
Z0, Z1, Z2, Z3 = (RNG.normal(size=8).astype("float32") for _ in range(4))


@pytest.mark.parametrize("path", [latent.lerp, latent.slerp])
def test_paths_start_and_end_exactly_at_the_codes(path):
    z = path(Z0, Z1, 7)
    assert z.shape == (7, 8) and z.dtype == np.float32
    np.testing.assert_array_equal(z[0], Z0)
    np.testing.assert_array_equal(z[-1], Z1)


def test_lerp_midpoint_is_the_mean_and_steps_are_even():
    z = latent.lerp(Z0, Z1, 5)
    np.testing.assert_allclose(z[2], (Z0 + Z1) / 2, rtol=1e-6)
    np.testing.assert_allclose(np.diff(z, axis=0), np.tile((Z1 - Z0) / 4, (4, 1)), atol=1e-6)


def test_slerp_keeps_the_norm_when_the_ends_have_equal_norm():
    z1 = Z1 * np.linalg.norm(Z0) / np.linalg.norm(Z1)
    z = latent.slerp(Z0, z1, 11)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), np.linalg.norm(Z0), rtol=1e-6)
    assert np.linalg.norm(latent.lerp(Z0, z1, 11)[5]) < 0.95 * np.linalg.norm(Z0)  # lerp cuts inside


def test_slerp_moves_at_constant_angular_speed_in_the_plane_of_the_ends():
    z = latent.slerp(np.array([1.0, 0.0]), np.array([0.0, 2.0]), 3)
    np.testing.assert_allclose(z[1], [np.cos(np.pi / 4), 2 * np.sin(np.pi / 4)], rtol=1e-6)


@pytest.mark.parametrize("factor", [2.5, -1.0, 0.0])
def test_slerp_falls_back_to_lerp_for_parallel_antiparallel_or_zero_codes(factor):
    z1 = factor * Z0
    np.testing.assert_array_equal(latent.slerp(Z0, z1, 6), latent.lerp(Z0, z1, 6))


def test_bilinear_grid_has_the_four_codes_at_its_corners_and_their_mean_at_its_centre():
    grid = latent.bilinear(Z0, Z1, Z2, Z3, 5, 7)
    assert grid.shape == (5, 7, 8) and grid.dtype == np.float32
    for corner, z in zip([grid[0, 0], grid[0, -1], grid[-1, 0], grid[-1, -1]], [Z0, Z1, Z2, Z3]):
        np.testing.assert_array_equal(corner, z)
    np.testing.assert_allclose(grid[2, 3], (Z0 + Z1 + Z2 + Z3) / 4, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grid[0], latent.lerp(Z0, Z1, 7), atol=1e-6)  # the top edge
    np.testing.assert_allclose(grid[:, 0], latent.lerp(Z0, Z2, 5), atol=1e-6)  # the left edge


def test_traverse_changes_one_coordinate_only():
    values = [-3.0, 0.0, 1.5]
    codes = latent.traverse(Z0, 2, values)
    assert codes.shape == (3, 8) and codes.dtype == np.float32
    np.testing.assert_array_equal(codes[:, 2], values)
    np.testing.assert_array_equal(np.delete(codes, 2, axis=1), np.tile(np.delete(Z0, 2), (3, 1)))


def test_mismatched_or_badly_shaped_codes_are_refused():
    with pytest.raises(ValueError, match=r"same dimension, found z0 \(8,\), z1 \(3,\)"):
        latent.lerp(Z0, np.zeros(3), 4)
    with pytest.raises(ValueError, match=r"z0 must be one latent code of shape \(d,\), found shape \(1, 8\)"):
        latent.slerp(Z0[None], Z1, 4)
    with pytest.raises(ValueError, match=r"z_bottom_right \(7,\)"):
        latent.bilinear(Z0, Z1, Z2, np.zeros(7), 3, 3)
    with pytest.raises(ValueError, match="n must be an integer >= 2, found 1"):
        latent.lerp(Z0, Z1, 1)
    with pytest.raises(ValueError, match="n_cols must be an integer >= 2"):
        latent.bilinear(Z0, Z1, Z2, Z3, 3, 0)
    with pytest.raises(ValueError, match=r"dim must be an integer in \[0, 8\) .* found 8"):
        latent.traverse(Z0, 8, [0.0])
    with pytest.raises(ValueError, match=r"values must be a 1-D sequence .* found shape \(2, 2\)"):
        latent.traverse(Z0, 0, np.zeros((2, 2)))
