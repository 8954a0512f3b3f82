"""EG3D crop, head pose and camera conversion of avatar_data.prepare on synthetic geometry (no MediaPipe)."""

import numpy as np
import pytest

from avatar_data import cameras
from avatar_data.prepare import alignment, canonical_face, evaluate, pose


def _rotation(yaw=0.0, pitch=0.0, roll=0.0):
    """Head rotation (degrees): yaw about world y, pitch about x, roll about z (counter-clockwise seen from the front)."""
    y, p, r = np.radians([yaw, pitch, roll])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), -np.sin(p)], [0, np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


FRONT_VIEW = np.diag([1.0, -1.0, -1.0])   # canonical (y up, z to the viewer) -> OpenCV camera (y down, z away)


def _project(points, rot, trans, focal, centre):
    cam = points @ rot.T + trans
    return focal * cam[:, :2] / cam[:, 2:] + np.asarray(centre)


def _source_landmarks(yaw=0.0, pitch=0.0, roll=0.0, trans=(3.0, -2.0, 80.0)):
    """The canonical face seen by a 1500 px camera of a 1280x720 frame: [468, 2] source pixels."""
    return _project(canonical_face.VERTICES, FRONT_VIEW @ _rotation(yaw, pitch, roll), np.array(trans), 1500.0,
                    (640.0, 360.0))


def test_pos_recovers_an_affine_camera():
    rng = np.random.default_rng(0)
    x3 = rng.standard_normal((5, 3))
    rows = np.array([[2.0, 0.3, 0.1], [-0.3, 2.0, 0.2]])
    t_true = np.array([100.0, 50.0])
    t, s = alignment.pos(x3 @ rows.T + t_true, x3)
    np.testing.assert_allclose(t, t_true, atol=1e-9)
    assert s == pytest.approx((np.linalg.norm(rows[0]) + np.linalg.norm(rows[1])) / 2)


def test_eg3d_crop_of_the_standard_face_is_its_recipe():
    # The standard five points seen orthographically at 150 px per BFM unit, centred at (400, 300):
    five = alignment.STANDARD_FIVE_POINTS[:, :2] * np.array([150.0, -150.0]) + np.array([400.0, 300.0])
    t = alignment.eg3d_crop_transform(five, 512)
    assert t.centre == pytest.approx((400.0, 300.0))
    # one BFM unit spans 300 px of the 1024 frame and the output is its centre 700 px at 512.
    assert t.scale == pytest.approx(300.0 / 150.0 * 512 / 700)
    np.testing.assert_allclose(t.to_source(t.to_crop(five)), five, atol=1e-9)


def test_crop_follows_the_face_under_a_similarity():
    base = _source_landmarks()
    t0 = alignment.eg3d_crop_transform(alignment.five_points(base))
    for angle, scale, shift in ((20.0, 1.2, (30.0, -10.0)), (-15.0, 0.8, (-40.0, 25.0))):
        a = np.radians(angle)
        m = scale * np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
        moved = (base - 640.0) @ m.T + 640.0 + np.array(shift)
        t = alignment.eg3d_crop_transform(alignment.five_points(moved))
        # POS's scale (mean norm of the affine camera's rows) is rotation-invariant up to the perspective of
        # the view; the image of the 3D origin moves with the face exactly.
        assert t.scale * scale == pytest.approx(t0.scale, rel=1e-3)
        expect_centre = (np.array(t0.centre) - 640.0) @ m.T + 640.0 + np.array(shift)
        np.testing.assert_allclose(t.centre, expect_centre, atol=1e-6)


def test_warp_to_crop_puts_a_source_point_where_the_transform_says():
    image = np.zeros((300, 400, 3), np.uint8)
    image[118:123, 248:253] = 255                 # a bright square centred at (250.5, 120.5)
    t = alignment.CropTransform(centre=(230.0, 140.0), scale=1.7, size=128)
    crop = alignment.warp_to_crop(image, t).astype(np.float64)[..., 0]
    ys, xs = np.mgrid[:128, :128] + 0.5
    w = np.clip(crop, 0, None) / np.clip(crop, 0, None).sum()
    np.testing.assert_allclose([(w * xs).sum(), (w * ys).sum()], t.to_crop(np.array([250.5, 120.5])), atol=0.05)
    # A crop reaching outside the image is black there.
    edge = alignment.warp_to_crop(image + 50, alignment.CropTransform(centre=(5.0, 5.0), scale=1.0, size=64))
    assert edge[:20, :20].max() == 0 and edge[40:, 40:].min() == 50


def test_canonical_face_data():
    v = canonical_face.VERTICES
    assert v.shape == (468, 3) and canonical_face.TRIANGLES.shape == (898, 3)
    assert canonical_face.TRIANGLES.min() == 0 and canonical_face.TRIANGLES.max() == 467
    assert v[1, 2] > 7.0 and v[33, 0] < -4.0 and v[263, 0] > 4.0     # nose tip forward, eyes to the sides
    assert len(canonical_face.PROCRUSTES_IDS) == 33 and np.all(canonical_face.PROCRUSTES_WEIGHTS > 0)
    # The mesh is mirror-symmetric: every vertex has a mirror vertex.
    d = np.linalg.norm(v[:, None] - v[None] * np.array([-1.0, 1.0, 1.0]), axis=-1)
    assert d.min(axis=1).max() < 1e-3


def test_canonical_to_bfm_fits_the_five_standard_points():
    s, r, t = pose.canonical_to_bfm()
    five = alignment.five_points(canonical_face.VERTICES)
    residual = np.linalg.norm(s * five @ r.T + t - alignment.STANDARD_FIVE_POINTS, axis=1)
    assert residual.max() < 0.015          # 1.5 mm in BFM decimetres
    assert np.degrees(np.arccos((np.trace(r) - 1) / 2)) < 1.0
    assert s == pytest.approx(0.0984, abs=0.002)


def _crop_pose(src):
    t = alignment.eg3d_crop_transform(alignment.five_points(src))
    return pose.solve_head_pose(t.to_crop(src), 512)


@pytest.mark.parametrize("yaw,pitch,roll", [(0, 0, 0), (25, 0, 0), (-30, 10, 0), (0, -15, 12), (20, 10, -20)])
def test_pnp_in_the_crop_recovers_the_head_rotation(yaw, pitch, roll):
    rot, trans, rms = _crop_pose(_source_landmarks(yaw, pitch, roll))
    rot0, trans0, _ = _crop_pose(_source_landmarks())
    # The head's rotation relative to the frontal pose, within the 1-2 degrees by which the crop's long-lens
    # camera sees an off-centre face from another direction than the source camera did.
    relative = rot0.T @ rot
    err = np.degrees(np.arccos(np.clip((np.trace(relative.T @ _rotation(yaw, pitch, roll)) - 1) / 2, -1, 1)))
    assert err < 2.5
    c2w = pose.eg3d_cam2world(rot, trans)
    assert cameras.camera_problems(c2w, cameras.FFHQ_INTRINSICS) == []
    assert np.linalg.norm(c2w[:3, 3]) == pytest.approx(2.7)
    angles = pose.camera_angles(c2w) - pose.camera_angles(pose.eg3d_cam2world(rot0, trans0))
    assert angles[2] == pytest.approx(roll, abs=1.0)
    if pitch == roll == 0:
        # A head turned to its left (positive yaw) is seen from its right: camera yaw negative.
        assert angles[0] == pytest.approx(-yaw, abs=2.5)
    assert pose.look_at_distance(c2w) < 0.05     # EG3D cameras aim near the pivot (0, 0, 0.2)
    assert rms < 2.0


def test_camera_angles_of_eg3d_cameras():
    c2w = cameras.lookat_cam2world(np.pi / 2 + np.radians(20.0), np.pi / 2)
    yaw, pitch, roll = pose.camera_angles(c2w)
    # The angles are those of the viewing direction, which aims at the pivot (0, 0, 0.2), not at the origin.
    centre = c2w[:3, 3]
    assert yaw == pytest.approx(np.degrees(np.arctan2(centre[0], centre[2] - 0.2)), abs=1e-6)
    assert yaw > 20.0 and pitch == pytest.approx(0.0, abs=1e-6) and roll == pytest.approx(0.0, abs=1e-6)
    assert pose.camera_angles(cameras.lookat_cam2world(np.pi / 2, np.pi / 2 + 0.2))[1] > 0   # camera below
    frontal = cameras.lookat_cam2world(np.pi / 2, np.pi / 2)
    spun = frontal.copy()
    a = np.radians(10.0)   # camera x turned towards its y (clockwise on screen): the picture turns counter-clockwise
    spin = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    spun[:3, :3] = frontal[:3, :3] @ spin
    assert pose.camera_angles(spun)[2] == pytest.approx(10.0, abs=1e-6)


def test_mesh_to_68_is_mirror_symmetric_on_the_canonical_face():
    pts = evaluate.mesh_to_68(canonical_face.VERTICES)
    mirror = np.concatenate([np.arange(16, -1, -1), np.arange(26, 16, -1), np.arange(27, 31),
                             np.arange(35, 30, -1), [45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40],
                             [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55], [64, 63, 62, 61, 60, 67, 66, 65]])
    np.testing.assert_allclose(pts[mirror] * np.array([-1.0, 1.0, 1.0]), pts, atol=1e-3)


def test_make_canonical_face_script_round_trips_its_data():
    import importlib.util
    import pathlib

    script = pathlib.Path(__file__).parents[3] / "scripts" / "make_canonical_face.py"
    spec = importlib.util.spec_from_file_location("make_canonical_face", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    v, tri = canonical_face.VERTICES, canonical_face.TRIANGLES
    text = "canonical_mesh: {\n  vertex_type: VERTEX_PT\n  primitive_type: TRIANGLE\n"
    text += "".join(f"  vertex_buffer: {x:.6f}\n" for row in v for x in (*row, 0.5, 0.5))
    text += "".join(f"  index_buffer: {i}\n" for i in tri.reshape(-1)) + "}\n"
    text += "".join(f"procrustes_landmark_basis {{ landmark_id: {i} weight: {float(w)!r} }}\n"
                    for i, w in zip(canonical_face.PROCRUSTES_IDS, canonical_face.PROCRUSTES_WEIGHTS))
    data = mod.parse_metadata(text)
    namespace = {}
    exec(mod.render_module(data, "test.pbtxt"), namespace)
    np.testing.assert_array_equal(namespace["VERTICES"], v)
    np.testing.assert_array_equal(namespace["TRIANGLES"], tri)
    np.testing.assert_array_equal(namespace["PROCRUSTES_IDS"], canonical_face.PROCRUSTES_IDS)
    np.testing.assert_array_equal(namespace["PROCRUSTES_WEIGHTS"], canonical_face.PROCRUSTES_WEIGHTS)
    with pytest.raises(ValueError):
        mod.parse_metadata("vertex_buffer: 1.0\n")
