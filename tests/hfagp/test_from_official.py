"""hfagp.from_official: an official HFA-GP audio-trainer checkpoint (written by the official modules, see
scripts/make_official_fixtures.py; a small EG3D generator, k = 4) becomes a workdir whose avatar renders what
the official forward renders. The checkpoint and its generator's snapshot pickle are committed xz-compressed
and unpacked here; the generator is converted with `convert_weights`. Needs no torch."""

from __future__ import annotations

import lzma
import shutil
from pathlib import Path

import numpy as np
import pytest

FIXTURE = Path(__file__).parent / "fixtures" / "official_checkpoint"
CHECKPOINT_NAME = "300004.pt"
# Forward tolerances of the EG3D parity fixtures (../shared/fixtures/eg3d/README.md); encoder and latents as
# the encoder parity test (relative to the reference's largest magnitude).
IMAGE_TOL = dict(atol=1e-4, rtol=1e-4)
LATENT_TOL = 1e-5

pytestmark = pytest.mark.slow  # renders of the small generator and conversions (~1 min on 2 cores)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """{'checkpoint': the official 300004.pt, 'generator': its base generator converted by convert_weights}."""
    from convert_weights.__main__ import main

    root = tmp_path_factory.mktemp("official_files")
    checkpoint, pkl = root / CHECKPOINT_NAME, root / "generator.pkl"
    for path in (checkpoint, pkl):
        path.write_bytes(lzma.decompress((FIXTURE / f"{path.name}.xz").read_bytes()))
    rc = main([str(pkl), str(root / "generator"), "--quiet"])
    assert rc == 0, "conversion of generator.pkl failed"
    return {"checkpoint": checkpoint, "generator": root / "generator"}


@pytest.fixture(scope="module")
def ref():
    with np.load(FIXTURE / "reference.npz") as f:
        return {k: f[k] for k in f.files}


@pytest.fixture(scope="module")
def converted(files, tmp_path_factory):
    """Two workdirs from the same weights: saved after update 300004 (past nosmo_iters = 300000) and, the
    file renamed, after update 299999 (before it)."""
    from hfagp.from_official import convert_official

    root = tmp_path_factory.mktemp("official")
    early = root / "299999.pt"
    shutil.copyfile(files["checkpoint"], early)
    after = convert_official(files["checkpoint"], root / "after", files["generator"])
    before = convert_official(early, root / "before", files["generator"])
    return {"after": (root / "after", after), "before": (root / "before", before)}


def _rel(got, want) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape
    return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


def test_summary_and_config(converted):
    from hfagp.workdir import load_config

    workdir, summary = converted["after"]
    assert summary["kind"] == "audio" and summary["k"] == 4 and summary["step"] == 300_005
    assert summary["audio_smoothing"] and not converted["before"][1]["audio_smoothing"]
    cfg = load_config(workdir)
    assert cfg.model.encoder == "audio" and cfg.schedule.audio_smoothing_start == 300_000
    assert cfg.schedule.total_steps == 800_000 and cfg.schedule.generator_tuning_start == 50_000
    assert cfg.loss.resolution == 256 and cfg.optim.batch_size == 1


@pytest.mark.parametrize("phase", ["after", "before"])
def test_the_converted_avatar_renders_the_official_forward(converted, ref, phase):
    from hfagp.inference import load_trained

    avatar = load_trained(converted[phase][0])
    smooth = phase == "after"
    assert avatar.temporal_smoothing == smooth and avatar.input_key == "audio_window"
    name = "smooth" if smooth else "plain"
    coeffs = np.asarray(avatar.coefficients(ref["windows"]))
    latents = np.asarray(avatar.latents_from_coefficients(coeffs))
    image = np.asarray(avatar.synthesis(latents, ref["c"])["image"])[:, ::2, ::2]  # the reference's pixels
    errors = {"coefficients": _rel(coeffs, ref[f"{name}_coefficients"]),
              "latents": _rel(latents, ref[f"{name}_latents"]),
              "image_max_abs": float(np.max(np.abs(image - ref[f"{name}_image_sub2"])))}
    print(phase, errors)
    assert errors["coefficients"] <= LATENT_TOL and errors["latents"] <= LATENT_TOL
    np.testing.assert_allclose(image, ref[f"{name}_image_sub2"], **IMAGE_TOL)


def test_the_generator_weights_are_the_checkpoints(converted, files):
    import eg3d_flax
    from convert_weights.torch_zip import read_torch_zip_checkpoint
    from convert_weights import eg3d_keys
    from hfagp.inference import load_trained

    avatar = load_trained(converted["after"][0])
    gen = read_torch_zip_checkpoint(files["checkpoint"])["gen"]
    state = eg3d_keys.variables_to_state_dict(avatar.generator.variables)
    base = eg3d_keys.variables_to_state_dict(eg3d_flax.load_generator(files["generator"]).variables)
    for key in ("backbone.synthesis.b4.conv1.weight", "decoder.net.0.weight", "superresolution.block1.conv1.weight"):
        np.testing.assert_array_equal(state[key], gen[f"generator.{key}"])
        assert not np.array_equal(state[key], base[key])  # the official run's G was tuned


def test_bad_inputs_are_one_line_errors(tmp_path, files, capsys):
    from hfagp.from_official import main

    rc = main([str(files["checkpoint"]), str(tmp_path / "w"), "--generator", str(tmp_path / "missing")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and err[0].startswith("hfagp.from_official: error:")
    assert "convert_weights" in err[0]
    renamed = tmp_path / "last.pt"
    shutil.copyfile(files["checkpoint"], renamed)
    rc = main([str(renamed), str(tmp_path / "w"), "--generator", str(files["generator"])])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "--iteration" in err[0]
    not_a_checkpoint = tmp_path / "000001.pt"
    not_a_checkpoint.write_bytes(b"not a zip")
    rc = main([str(not_a_checkpoint), str(tmp_path / "w"), "--generator", str(files["generator"])])
    assert rc == 2 and "not a torch zip checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "w").exists()
