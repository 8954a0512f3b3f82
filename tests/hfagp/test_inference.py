"""Loading a trained workdir back for inference (hfagp.inference)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def test_load_trained_restores_the_tuned_run(tiny_rgb_run):
    import jax

    import eg3d_flax
    from hfagp.inference import load_split, load_trained
    from hfagp.workdir import checkpoint_steps

    avatar = load_trained(tiny_rgb_run)
    assert avatar.step == 12 and checkpoint_steps(tiny_rgb_run) == [12]
    assert avatar.encoder_kind == "rgb" and avatar.input_key == "image" and avatar.k == 8
    # The run saved its random-preset generator; the checkpoint's tuned weights replace its params.
    base = eg3d_flax.load_generator(tiny_rgb_run / "generator")
    diff = jax.tree_util.tree_map(lambda a, b: float(np.abs(np.asarray(a) - np.asarray(b)).max()),
                                  avatar.generator.variables["params"], base.variables["params"])
    assert max(jax.tree_util.tree_leaves(diff)) > 0, "stage 2 (steps 9-12) must have tuned the generator"

    frames = load_split(avatar, "test")
    assert frames["image"].shape == (4, 128, 128, 3) and frames["label"].shape == (4, 25)
    ws = np.asarray(avatar.latents(frames["image"][:2]))
    assert ws.shape == (2, avatar.generator.config.num_ws, 512)
    coeffs = np.asarray(avatar.coefficients(frames["image"][:2]))
    basis = avatar.basis_matrix()
    np.testing.assert_allclose(basis @ basis.T, np.eye(8), atol=1e-5)  # 'qr' mode: orthonormal rows
    np.testing.assert_allclose(ws.reshape(2, -1), coeffs @ basis + avatar.offset(), rtol=1e-4, atol=1e-4)
    out = avatar.render(frames["image"][:2], frames["label"][:2])
    assert out["image"].shape == (2, 128, 128, 3) and np.isfinite(np.asarray(out["image"])).all()
    # The training's final held-out evaluation used the same render path: same PSNR order of magnitude.
    mse = np.mean((np.asarray(out["image"]) - frames["image"][:2]) ** 2)
    assert mse < np.mean((frames["image"][:2] - frames["image"][:2].mean()) ** 2) * 4


def test_load_trained_errors_name_the_problem(tiny_rgb_run, converted_dirs, tmp_path):
    from hfagp.inference import RunNotFoundError, load_trained

    with pytest.raises(RunNotFoundError, match="config.json is missing"):
        load_trained(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(RunNotFoundError, match="not valid JSON"):
        load_trained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"model": {}}))
    with pytest.raises(RunNotFoundError, match=r"lacks the sections \['generator', 'data', 'loss'\]"):
        load_trained(tmp_path)
    shutil.copy(tiny_rgb_run / "config.json", tmp_path / "config.json")
    with pytest.raises(RunNotFoundError, match="no complete checkpoint"):
        load_trained(tmp_path)
    with pytest.raises(RunNotFoundError, match=r"no checkpoint for step 5; available: \[12\]"):
        load_trained(tiny_rgb_run, step=5)
    # A generator that does not fit the checkpoint is refused, not silently mixed.
    moved = tmp_path / "other"
    shutil.copytree(tiny_rgb_run, moved)
    with pytest.raises(RunNotFoundError, match="do not match the generator"):
        load_trained(moved, generator_path=converted_dirs["small512"])
