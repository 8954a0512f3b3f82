"""Camera conventions: hand-computed cases, EG3D's look-at camera and the fixture's stored cameras."""

import math

import numpy as np
import pytest

from avatar_data import cameras

FIXTURE = "/work/shared/fixtures/eg3d/tiny128_reference.npz"


def test_lookat_frontal_matches_hand_computed_label():
    # Frontal EG3D camera: centre (0, 0, 2.7), aiming at (0, 0, 0.2) -> forward (0,0,-1), right (1,0,0),
    # down (0,-1,0) (OpenCV columns); FFHQ intrinsics.
    label = cameras.eg3d_label(cameras.lookat_cam2world(math.pi / 2, math.pi / 2, 2.7, (0, 0, 0.2)),
                               cameras.FFHQ_INTRINSICS)
    expected = np.array([1, 0, 0, 0,
                         0, -1, 0, 0,
                         0, 0, -1, 2.7,
                         0, 0, 0, 1,
                         4.2647, 0, 0.5, 0, 4.2647, 0.5, 0, 0, 1], np.float32)
    assert label.dtype == np.float32 and label.shape == (25,)
    np.testing.assert_allclose(label, expected, atol=1e-6)


def test_lookat_matches_fixture_cameras():
    # README "Cameras": c of tiny128_reference.npz, from LookAtPoseSampler + FOV_to_intrinsics(18.837).
    c = np.load(FIXTURE)["c"]
    yaw = np.array([math.pi / 2 + 0.35, math.pi / 2 - 0.45])
    pitch = np.array([math.pi / 2 - 0.12, math.pi / 2 + 0.18])
    labels = cameras.eg3d_label(cameras.lookat_cam2world(yaw, pitch, 2.7, (0, 0, 0.2)),
                                cameras.fov_to_intrinsics(18.837))
    np.testing.assert_allclose(labels, c, atol=2e-6)  # the fixture was computed in float32
    # Stored facts: centres (0.923, 0.206, 2.529) / (-1.167, -0.309, 2.415), 2.7 from the world origin.
    c2w, k = cameras.split_eg3d_label(labels)
    np.testing.assert_allclose(c2w[:, :3, 3], [[0.923, 0.206, 2.529], [-1.167, -0.309, 2.415]], atol=1e-3)
    np.testing.assert_allclose(np.linalg.norm(c2w[:, :3, 3], axis=-1), 2.7, atol=1e-6)
    assert k[0, 0, 0] == pytest.approx(4.263391, abs=1e-6)


def test_lookat_axes_point_at_pivot_and_are_right_down_forward():
    c2w = cameras.lookat_cam2world(np.array([1.2, 1.9]), np.array([1.4, 1.7]), radius=2.7, pivot=(0, 0, 0.2))
    for m in c2w:
        rot, centre = m[:3, :3], m[:3, 3]
        np.testing.assert_allclose(rot.T @ rot, np.eye(3), atol=1e-12)
        assert np.linalg.det(rot) == pytest.approx(1.0)
        to_pivot = np.array([0, 0, 0.2]) - centre
        np.testing.assert_allclose(rot[:, 2], to_pivot / np.linalg.norm(to_pivot), atol=1e-12)
        assert rot[1, 0] == pytest.approx(0.0, abs=1e-12)  # no roll: image right is horizontal
        assert rot[1, 1] < 0  # image down points down in the y-up world


def test_opengl_to_opencv_hand_computed():
    # A Blender/NeRF camera at (0, 0, 4) with identity rotation looks along world -z (at the origin).
    gl = np.eye(4)
    gl[2, 3] = 4.0
    cv = cameras.opengl_to_opencv_cam2world(gl)
    np.testing.assert_array_equal(cv, [[1, 0, 0, 0], [0, -1, 0, 0], [0, 0, -1, 4], [0, 0, 0, 1]])
    assert gl[1, 1] == 1.0  # input untouched
    # Same axes as EG3D's frontal look-at camera.
    np.testing.assert_allclose(cv[:3, :3], cameras.lookat_cam2world(math.pi / 2, math.pi / 2)[:3, :3], atol=1e-12)
    np.testing.assert_array_equal(cameras.opencv_to_opengl_cam2world(cv), gl)


def test_focal_pixels_to_normalized_intrinsics_hand_computed():
    k = cameras.focal_pixels_to_normalized_intrinsics(1200.0, 512, 512)
    np.testing.assert_allclose(k, [[1200 / 512, 0, 0.5], [0, 1200 / 512, 0.5], [0, 0, 1]])
    # AD-NeRF style: focal 1000 px, principal point (225, 200) OpenCV pixels in a 450x400 image.
    k = cameras.focal_pixels_to_normalized_intrinsics((1000.0, 900.0), 450, 400, cx=225.0, cy=200.0)
    np.testing.assert_allclose(k, [[1000 / 450, 0, 225.5 / 450], [0, 900 / 400, 200.5 / 400], [0, 0, 1]])
    np.testing.assert_allclose(cameras.normalized_intrinsics_to_pixels(k, 450, 400), (1000, 900, 225, 200))


def test_fov_to_intrinsics_reproduces_eg3d_constants():
    k = cameras.fov_to_intrinsics(18.837)
    assert k[0, 0] == pytest.approx(1 / (math.tan(18.837 * 3.14159 / 360) * 1.414))
    assert k[0, 0] == pytest.approx(4.2634, abs=1e-4)
    np.testing.assert_array_equal(k[:, 2], [0.5, 0.5, 1.0])


def test_label_split_roundtrip_and_validation():
    c2w = cameras.lookat_cam2world(np.array([1.3, 1.6, 1.8]), np.array([1.5, 1.6, 1.7]))
    labels = cameras.eg3d_label(c2w, cameras.FFHQ_INTRINSICS)
    assert labels.shape == (3, 25)
    back_c2w, back_k = cameras.split_eg3d_label(labels)
    np.testing.assert_allclose(back_c2w, c2w, atol=1e-6)
    np.testing.assert_allclose(back_k, np.broadcast_to(cameras.FFHQ_INTRINSICS, (3, 3, 3)), atol=1e-6)
    with pytest.raises(ValueError, match="25"):
        cameras.split_eg3d_label(np.zeros(24))


def _eg3d_rays(label, width, height):
    """EG3D RaySampler in numpy: pixel (row j, col i) centre at ((i+0.5)/W, (j+0.5)/H)."""
    c2w, k = cameras.split_eg3d_label(np.asarray(label, np.float64))
    j, i = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    x = ((i + 0.5) / width - k[0, 2]) / k[0, 0]
    y = ((j + 0.5) / height - k[1, 2]) / k[1, 1]
    d = np.stack([x, y, np.ones_like(x)], -1) @ c2w[:3, :3].T
    return d / np.linalg.norm(d, axis=-1, keepdims=True)


def _nerface_rays(transform_matrix, intrinsics, width, height):
    """NeRFACE get_ray_bundle: directions ((i - W cx)/fx, -(j - H cy)/fy, -1) in OpenGL camera axes."""
    fx, fy, cx, cy = intrinsics
    j, i = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    d = np.stack([(i - width * cx) / fx, -(j - height * cy) / fy, -np.ones(i.shape)], -1)
    d = d @ np.asarray(transform_matrix)[:3, :3].T
    return d / np.linalg.norm(d, axis=-1, keepdims=True)


def test_converted_nerface_camera_gives_the_same_rays_as_eg3d():
    # A tilted OpenGL camera with off-centre principal point and fx != fy.
    yaw, pitch = 0.3, -0.2
    ry = np.array([[math.cos(yaw), 0, math.sin(yaw)], [0, 1, 0], [-math.sin(yaw), 0, math.cos(yaw)]])
    rx = np.array([[1, 0, 0], [0, math.cos(pitch), -math.sin(pitch)], [0, math.sin(pitch), math.cos(pitch)]])
    gl = np.eye(4)
    gl[:3, :3] = ry @ rx
    gl[:3, 3] = [0.5, -0.3, 3.0]
    width, height, intr = 24, 20, (30.0, 33.0, 0.45, 0.55)
    k = cameras.focal_pixels_to_normalized_intrinsics(intr[:2], width, height, width * intr[2], height * intr[3])
    label = cameras.eg3d_label(cameras.opengl_to_opencv_cam2world(gl), k)
    np.testing.assert_allclose(_eg3d_rays(label, width, height), _nerface_rays(gl, intr, width, height), atol=1e-6)
    np.testing.assert_allclose(label[:16].reshape(4, 4)[:3, 3], gl[:3, 3], atol=1e-6)


def test_estimate_lookat_and_normalize_cameras():
    # Cameras in a tracker's world: EG3D cameras scaled by 10 and shifted by (1, 2, 3).
    c2w = cameras.lookat_cam2world(np.linspace(1.2, 1.9, 6), np.linspace(1.4, 1.7, 6), radius=2.7, pivot=(0, 0, 0.2))
    src = c2w.copy()
    src[:, :3, 3] = 10.0 * c2w[:, :3, 3] + np.array([1.0, 2.0, 3.0])
    lookat = cameras.estimate_lookat_point(src)
    np.testing.assert_allclose(lookat, 10.0 * np.array([0, 0, 0.2]) + [1, 2, 3], atol=1e-9)
    dist = np.linalg.norm(c2w[:, :3, 3] - [0, 0, 0.2], axis=-1).mean()
    out, info = cameras.normalize_cameras(src, cameras.CameraNormalization(distance=dist))
    np.testing.assert_allclose(out, c2w, atol=1e-9)
    assert info["scale"] == pytest.approx(0.1)
    out2, _ = cameras.normalize_cameras(src, cameras.CameraNormalization(lookat=tuple(lookat)))
    np.testing.assert_allclose(np.linalg.norm(out2[:, :3, 3] - [0, 0, 0.2], axis=-1).mean(), 2.5)
    np.testing.assert_array_equal(out2[:, :3, :3], src[:, :3, :3])
    # Parallel optical axes: no meeting point.
    same = np.repeat(c2w[:1], 3, axis=0)
    same[:, 0, 3] += np.arange(3)
    with pytest.raises(ValueError, match="look-at point"):
        cameras.estimate_lookat_point(same)


def test_camera_problems():
    c2w, k = cameras.split_eg3d_label(cameras.eg3d_label(cameras.lookat_cam2world(1.5, 1.5),
                                                        cameras.FFHQ_INTRINSICS).astype(np.float64))
    assert cameras.camera_problems(c2w, k) == []
    bad = c2w.copy()
    bad[:3, 0] *= 2
    assert "orthonormal" in cameras.camera_problems(bad, k)[0]
    mirrored = c2w.copy()
    mirrored[:3, 0] *= -1
    assert "reflection" in cameras.camera_problems(mirrored, k)[0]
    assert "non-finite" in cameras.camera_problems(c2w, np.full((3, 3), np.nan))[0]
