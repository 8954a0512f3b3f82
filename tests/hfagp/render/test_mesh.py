"""Density grids, marching cubes and mesh files on analytic densities (exact answers known)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("skimage")

from hfagp.render import mesh  # noqa: E402

CENTRE = np.array([0.1, -0.05, 0.08])


def sphere_density(resolution: int, radius: float, cube: float = 1.0):
    """Density 10 + 20 (radius - |x - CENTRE|): equals EG3D's threshold 10 on the sphere."""
    points, origin, voxel = mesh.cube_grid(resolution, cube)
    dist = np.linalg.norm(points - CENTRE, axis=1).reshape((resolution,) * 3)
    return 10.0 + 20.0 * (radius - dist), origin, voxel


def test_cube_grid_layout():
    points, origin, voxel = mesh.cube_grid(5, 2.0, center=(1.0, 0.0, 0.0))
    assert points.shape == (125, 3)
    np.testing.assert_allclose(origin, [0.0, -1.0, -1.0])
    assert voxel == pytest.approx(0.5)
    i, j, k = 1, 3, 4
    np.testing.assert_allclose(points[(i * 5 + j) * 5 + k], origin + voxel * np.array([i, j, k]), atol=1e-6)
    np.testing.assert_allclose(points.max(0), [2.0, 1.0, 1.0], atol=1e-6)


def test_sphere_is_closed_outward_and_in_world_units():
    density, origin, voxel = sphere_density(40, 0.3)
    vertices, faces = mesh.extract_mesh(mesh.pad_border(density, 1), mesh.EG3D_THRESHOLD, origin, voxel)
    assert len(vertices) > 500 and faces.min() >= 0 and faces.max() < len(vertices)
    assert mesh.closed_edge_fraction(faces) == 1.0
    assert mesh.euler_characteristic(vertices, faces) == 2          # one closed genus-0 surface
    radii = np.linalg.norm(vertices - CENTRE, axis=1)
    # vertices interpolate along grid edges (chords of the sphere): off by at most the sagitta voxel^2 / (8 r)
    np.testing.assert_allclose(radii, 0.3, atol=1.1 * voxel ** 2 / (8 * 0.3))
    volume = mesh.signed_volume(vertices, faces)                   # > 0: faces wind outward
    assert volume == pytest.approx(4 / 3 * np.pi * 0.3 ** 3, rel=0.02)


def test_border_closes_a_surface_cut_by_the_box():
    """A half-space (dense below a plane) reaches the box faces; the padded border closes it."""
    points, origin, voxel = mesh.cube_grid(24, 1.0)
    density = (10.0 + 5.0 * (0.1 - points[:, 1])).reshape(24, 24, 24)
    width = 2
    vertices, faces = mesh.extract_mesh(mesh.pad_border(density, width), 10.0, origin, voxel)
    assert mesh.closed_edge_fraction(faces) == 1.0
    assert mesh.euler_characteristic(vertices, faces) == 2
    assert mesh.signed_volume(vertices, faces) > 0
    assert vertices[:, 1].max() == pytest.approx(0.1, abs=1e-4)   # the cut plane stays where it was
    inner = 0.5 - (width - 0.5) * voxel   # the box edge lies between the last padded and first kept voxel
    assert np.abs(vertices[:, [0, 2]]).max() == pytest.approx(inner, abs=0.5 * voxel)


def test_empty_threshold_and_bad_border_errors():
    density, origin, voxel = sphere_density(12, 0.2)
    with pytest.raises(ValueError, match="outside the density range"):
        mesh.extract_mesh(density, 1000.0, origin, voxel)
    with pytest.raises(ValueError, match="at least 1"):
        mesh.pad_border(density, 0)
    with pytest.raises(ValueError, match="percentile"):
        mesh.auto_threshold(density, 100.0)


def test_auto_threshold_is_a_percentile_of_the_interior():
    volume = np.arange(6 ** 3, dtype=np.float32).reshape(6, 6, 6)
    inner = volume[1:5, 1:5, 1:5]
    assert mesh.auto_threshold(volume, 90.0, width=1) == pytest.approx(np.percentile(inner, 90.0))
    density, _, _ = sphere_density(20, 0.3)
    level = mesh.auto_threshold(density, 95.0)
    assert np.mean(density > level) == pytest.approx(0.05, abs=0.01)


@pytest.mark.parametrize("suffix", [".ply", ".obj"])
def test_mesh_files_round_trip(tmp_path, suffix):
    density, origin, voxel = sphere_density(16, 0.3)
    vertices, faces = mesh.extract_mesh(mesh.pad_border(density, 1), 10.0, origin, voxel)
    path = mesh.write_mesh(tmp_path / f"sphere{suffix}", vertices, faces)
    read = mesh.read_ply if suffix == ".ply" else mesh.read_obj
    v2, f2 = read(path)
    np.testing.assert_array_equal(f2, faces)
    np.testing.assert_allclose(v2, vertices, atol=1e-5)
    with pytest.raises(ValueError, match=r"\.ply or \.obj"):
        mesh.write_mesh(tmp_path / "sphere.stl", vertices, faces)
