"""The synthetic avatar world (avatar_data.worlds.synthetic): one small world from the tiny128 fixture generator,
built once through the CLI, then checked file by file and read back through all three readers."""

import json
import math
import pathlib

import numpy as np
import pytest

from avatar_data import cameras
from avatar_data.formats import adnerf, common, eg3d, nerface
from avatar_data.worlds import synthetic, writer

NUM_FRAMES, NUM_TEST, SUBSPACE_DIM, SEED, BATCH, PERTURB = 8, 2, 4, 3, 4, 0.05
VIEWS = [(20.0, 0.0), (-20.0, 0.0)]
EXPRESSION_NOISE, AUDIO_NOISE = 0.05, 0.05
TINY128_PKL = pathlib.Path(__file__).resolve().parents[4] / "shared" / "fixtures" / "eg3d" / "tiny128.pkl"


@pytest.fixture(scope="module")
def generator_dir(tmp_path_factory):
    """The shared tiny128 fixture converted to a generator directory (random weights, 128x128 output)."""
    import eg3d_flax

    out = tmp_path_factory.mktemp("generator") / "tiny128"
    if TINY128_PKL.is_file():
        from convert_weights.__main__ import main as convert
        assert convert([str(TINY128_PKL), str(out), "--quiet"]) == 0
    else:  # no shared fixtures: a random preset generator (slower to initialise)
        eg3d_flax.save_generator(eg3d_flax.random_generator(eg3d_flax.preset("tiny128"), seed=0), out)
    return out


@pytest.fixture(scope="module")
def world(generator_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("world") / "w"
    argv = [str(out), "--generator", str(generator_dir), "--frames", str(NUM_FRAMES), "--test-frames",
            str(NUM_TEST), "--subspace-dim", str(SUBSPACE_DIM), "--seed", str(SEED), "--batch-size", str(BATCH),
            "--novel-views", ",".join(f"{y:g}:{p:g}" for y, p in VIEWS), "--perturb", str(PERTURB), "--quiet"]
    assert synthetic.main(argv) == 0
    return out


@pytest.fixture(scope="module")
def truth(world):
    return synthetic.load_ground_truth(str(world))


@pytest.fixture(scope="module")
def generators(truth):
    """(prior, perturbed renderer), re-created from the world's stored generator spec."""
    return synthetic.world_generators(truth)


@pytest.fixture(scope="module")
def generator(generators):
    return generators[0]


@pytest.fixture(scope="module")
def first_batch(generators, truth):
    """The first BATCH frames rendered again from the stored ground truth by the re-created renderer."""
    return synthetic.render_images(generators[1], truth["ws"][:BATCH], truth["labels"][:BATCH],
                                   batch_size=BATCH, progress=False)


def test_files_shapes_and_metadata(world, truth):
    for name in ("world.json", "split.json", "expression.npy", "aud.npy", "ground_truth.npz",
                 "frames/dataset.json", "novel_views/dataset.json", "novel_views/views.json",
                 "nerface/transforms_train.json", "nerface/transforms_test.json",
                 "adnerf/transforms_train.json", "adnerf/transforms_val.json", "adnerf/aud.npy"):
        assert (world / name).is_file(), name
    assert not list(world.parent.glob(".w.tmp-*")), "temporary directory left behind"
    meta = truth["world"]
    assert meta["format"] == synthetic.FORMAT_NAME
    assert (meta["num_frames"], meta["num_train_frames"], meta["num_test_frames"]) == \
        (NUM_FRAMES, NUM_FRAMES - NUM_TEST, NUM_TEST)
    assert meta["resolution"] == 128 and meta["generator"]["kind"] == "dir"
    assert truth["generator_spec"] == meta["generator"] and truth["perturbation"]["amount"] == PERTURB
    split = json.loads((world / "split.json").read_text())
    n_train = NUM_FRAMES - NUM_TEST
    assert split == {"train": list(range(n_train)), "test": list(range(n_train, NUM_FRAMES))}

    num_ws, w_dim = meta["latent"]["num_ws"], meta["latent"]["w_dim"]
    assert truth["w_mean"].shape == (num_ws, w_dim) and truth["basis"].shape == (SUBSPACE_DIM, num_ws, w_dim)
    assert truth["coefficients"].shape == (NUM_FRAMES, SUBSPACE_DIM)
    assert truth["ws"].shape == (NUM_FRAMES, num_ws, w_dim) and truth["labels"].shape == (NUM_FRAMES, 25)
    # ws lie exactly in the hidden affine subspace.
    rebuilt = truth["w_mean"] + np.einsum("td,dlc->tlc", truth["coefficients"], truth["basis"])
    np.testing.assert_allclose(truth["ws"], rebuilt, atol=1e-4)
    # Basis: orthogonal directions of equal length direction_scale * prior spread.
    flat = truth["basis"].reshape(SUBSPACE_DIM, -1).astype(np.float64)
    length = meta["latent"]["direction_scale"] * meta["latent"]["prior_spread"]
    np.testing.assert_allclose(flat @ flat.T, length ** 2 * np.eye(SUBSPACE_DIM), atol=1e-3 * length ** 2)
    # Truly W+: the directions differ between layers.
    assert np.abs(truth["basis"][:, 0] - truth["basis"][:, 1]).max() > 0.1 * np.abs(truth["basis"]).max()


def test_coefficients_are_smooth_and_bounded(truth):
    a = truth["coefficients"].astype(np.float64)
    assert np.all(np.abs(a) <= 1.0 + 1e-6)
    # The stored trajectory reproduces the coefficients; steps obey the sinusoids' slope bound.
    np.testing.assert_allclose(truth["trajectory"](np.arange(NUM_FRAMES)), a, atol=1e-6)
    traj = truth["trajectory"]
    slope_bound = 2 * np.pi * np.sum(traj.amplitude * traj.frequency, axis=1)
    assert np.all(np.abs(np.diff(a, axis=0)) <= slope_bound + 1e-6)
    assert slope_bound.max() <= 2 * np.pi / 16 + 1e-9
    # It moves: not constant, and smooth (second differences much smaller than first differences).
    assert np.abs(np.diff(a, axis=0)).max() > 1e-3
    assert np.abs(np.diff(a, 2, axis=0)).mean() < 0.5 * np.abs(np.diff(a, axis=0)).mean()


def test_cameras_wobble_near_frontal(truth):
    c2w, k = cameras.split_eg3d_label(truth["labels"].astype(np.float64))
    centre, forward = c2w[:, :3, 3], c2w[:, :3, 2]
    np.testing.assert_allclose(np.linalg.norm(centre, axis=1), 2.7, atol=1e-5)
    np.testing.assert_allclose(k, np.broadcast_to(cameras.FFHQ_INTRINSICS, k.shape), atol=1e-6)
    angle = np.degrees(np.arccos(np.clip(forward @ np.array([0.0, 0.0, -1.0]), -1, 1)))
    assert angle.max() < 8.0
    assert np.abs(np.degrees(truth["camera_yaw_offset"])).max() <= 6.0 + 1e-4
    assert np.abs(np.degrees(truth["camera_pitch_offset"])).max() <= 3.0 + 1e-4
    assert np.ptp(centre[:, 0]) > 1e-4, "the camera should move"
    # Every camera looks at the pivot (0, 0, 0.2).
    to_pivot = np.array([0.0, 0.0, 0.2]) - centre
    np.testing.assert_allclose(np.cross(forward, to_pivot), 0.0, atol=1e-6)
    for m, kk in zip(c2w, k):
        assert cameras.camera_problems(m, kk) == []


def test_driving_signals_are_noisy_functions_of_coefficients(world, truth):
    expression = np.load(world / "expression.npy")
    audio = np.load(world / "aud.npy")
    assert expression.shape == (NUM_FRAMES, 76) and expression.dtype == np.float32
    assert audio.shape == (NUM_FRAMES, 16, 29) and audio.dtype == np.float32
    clean_expr = synthetic.pseudo_expression(truth["coefficients"], truth)
    clean_audio = synthetic.pseudo_audio(truth["trajectory"], NUM_FRAMES, truth)
    for noisy, clean, noise in ((expression, clean_expr, EXPRESSION_NOISE), (audio, clean_audio, AUDIO_NOISE)):
        residual = noisy - clean
        assert abs(residual.std() / noise - 1.0) < 0.15, residual.std()
        assert abs(residual.mean()) < 4 * noise / math.sqrt(residual.size)
        assert clean.std() > 4 * noise, "the signal should dominate the noise"
    # Audio rows see different moments: the first and last rows of a window differ.
    assert np.abs(clean_audio[:, 0] - clean_audio[:, -1]).mean() > 0.01
    # Row j of frame t encodes time t + (j - 7.5)/2, so row j of frame t+1 is row j+2 of frame t.
    np.testing.assert_allclose(clean_audio[1:, :-2], clean_audio[:-1, 2:], atol=1e-9)


def test_frames_round_trip_through_the_readers(world, truth, first_batch):
    clip = eg3d.read_eg3d_folder(str(world / "frames"))
    arrays = common.clip_arrays(clip)
    assert arrays["image"].shape == (NUM_FRAMES, 128, 128, 3) and arrays["image"].dtype == np.uint8
    np.testing.assert_array_equal(arrays["label"], truth["labels"])
    # The files hold exactly what the (perturbed) generator renders from the stored ground truth.
    np.testing.assert_array_equal(arrays["image"][:BATCH], first_batch)
    # The person changes over time (the coefficients move) and the frames are not flat.
    assert np.abs(arrays["image"][0].astype(float) - arrays["image"][-1]).mean() > 1.0
    assert arrays["image"].std() > 5

    nerface_clip = nerface.read_nerface_folder(str(world / "nerface"))
    nerface_arrays = common.clip_arrays(nerface_clip)
    np.testing.assert_array_equal(nerface_arrays["image"], arrays["image"])
    np.testing.assert_array_equal(nerface_clip.expressions, np.load(world / "expression.npy"))
    np.testing.assert_allclose(nerface_clip.labels, truth["labels"], atol=2e-6)
    assert nerface_clip.metadata["source_splits"] == {"train": NUM_FRAMES - NUM_TEST, "test": NUM_TEST}

    adnerf_clip = adnerf.read_adnerf_folder(str(world / "adnerf"))
    np.testing.assert_array_equal(common.clip_arrays(adnerf_clip)["image"], arrays["image"])
    np.testing.assert_array_equal(adnerf_clip.audio, np.load(world / "aud.npy"))
    np.testing.assert_allclose(adnerf_clip.labels, truth["labels"], atol=2e-6)


def test_novel_views(world, truth, generator):
    clip = eg3d.read_eg3d_folder(str(world / "novel_views"))
    assert clip.num_frames == NUM_TEST * len(VIEWS)
    views = json.loads((world / "novel_views" / "views.json").read_text())["views"]
    assert len(views) == NUM_TEST * len(VIEWS)
    assert sorted({v["frame_index"] for v in views}) == list(range(NUM_FRAMES - NUM_TEST, NUM_FRAMES))
    by_name = {v["name"]: v for v in views}
    frames = common.clip_arrays(clip)["image"]
    for name, label, image in zip(clip.names, clip.labels, frames):
        v = by_name[name]
        expected = synthetic.camera_labels(np.radians([v["yaw_offset_deg"]]), np.radians([v["pitch_offset_deg"]]),
                                           generator.config)[0]
        np.testing.assert_allclose(label, expected, atol=1e-6)
        # A yaw offset of +-20 deg moves the camera centre 20 deg around the world y axis, to +-x.
        assert np.sign(label[3]) == np.sign(v["yaw_offset_deg"])
        assert abs(math.degrees(math.atan2(abs(label[3]), label[11])) - 20.0) < 1e-3
        assert image.std() > 5
    # Different cameras of the same moment give different images.
    first = [i for i, n in enumerate(clip.names) if by_name[n]["frame_index"] == NUM_FRAMES - 1]
    assert np.abs(frames[first[0]].astype(float) - frames[first[1]]).mean() > 0.5
    np.testing.assert_array_equal(truth["novel_frame_index"], [v["frame_index"] for v in views])


def test_perturbed_generator_changes_the_render(generators, truth, first_batch):
    import jax

    generator = generators[0]
    perturbed = synthetic.perturb_generator(generator, 0.05, seed=1)
    assert synthetic.perturb_generator(generator, 0.0, seed=1) is generator
    old = dict(jax.tree_util.tree_flatten_with_path(generator.variables["params"])[0])
    changed = 0
    for path, leaf in jax.tree_util.tree_flatten_with_path(perturbed.variables["params"])[0]:
        before = np.asarray(old[path])
        delta = np.asarray(leaf) - before
        if "mapping" in jax.tree_util.keystr(path) or before.std() == 0:
            np.testing.assert_array_equal(delta, 0.0)
        elif before.size > 1000:
            assert abs(delta.std() / before.std() - 0.05) < 0.01
            changed += 1
    assert changed > 5
    assert perturbed.variables["buffers"] is generator.variables["buffers"]
    again = synthetic.perturb_generator(generator, 0.05, seed=1)
    leaf = lambda g: jax.tree_util.tree_leaves(g.variables["params"])[-1]
    np.testing.assert_array_equal(leaf(again), leaf(perturbed))

    # The world was rendered by a perturbed copy; the prior renders the same latents differently.
    images = synthetic.render_images(generator, truth["ws"][:BATCH], truth["labels"][:BATCH], batch_size=BATCH,
                                     progress=False)
    diff = np.abs(images.astype(float) - first_batch).mean()
    assert 0.5 < diff < 60, diff


def test_trajectories_and_maps_are_deterministic():
    a = writer.random_trajectory(np.random.default_rng(5), 3)
    b = writer.random_trajectory(np.random.default_rng(5), 3)
    c = writer.random_trajectory(np.random.default_rng(6), 3)
    t = np.linspace(-10, 50, 61)
    np.testing.assert_array_equal(a(t), b(t))
    assert np.abs(a(t) - c(t)).max() > 0.1
    np.testing.assert_allclose(np.abs(a.amplitude).sum(axis=1), 1.0)
    m = synthetic.random_expression_map(np.random.default_rng(0), 3)
    coeffs = a(np.arange(5))
    np.testing.assert_allclose(synthetic.pseudo_expression(coeffs, m),
                               coeffs @ m["expression_matrix"] + m["expression_bias"])


def test_cli_rejects_bad_arguments(tmp_path, capsys):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("not a world")
    assert synthetic.main([str(busy), "--generator", "tiny128", "--quiet"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert synthetic.main([str(busy), "--generator", "tiny128", "--overwrite", "--quiet"]) == 2
    assert "is not a world (no world.json)" in capsys.readouterr().err
    assert (busy / "keep.txt").read_text() == "not a world"
    assert synthetic.main([str(tmp_path / "new"), "--generator", "no-such-preset", "--quiet"]) == 2
    assert "neither a generator directory nor a preset" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        synthetic.main([str(tmp_path / "new"), "--generator", "tiny128", "--novel-views", "20,0"])
    assert "YAW:PITCH" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    assert writer.parse_novel_views("none") == []
    assert writer.parse_novel_views("20:0,-5.5:10") == [(20.0, 0.0), (-5.5, 10.0)]
