"""The shipped head-world prior (pretrained/heads128): its files are the ones its provenance records, it loads,
and one recorded held-out metric is measured again."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from shared_fixtures import REPO_ROOT

pytestmark = pytest.mark.optimized

PRIOR = REPO_ROOT / "pretrained" / "heads128"
# Re-running the inversion on another CPU of the same kind reorders float32 sums a little; 150 Adam steps
# later the PSNR of one view moves by a few hundredths of a dB.
PSNR_TOLERANCE_DB = 0.25


def _provenance() -> dict:
    return json.loads((PRIOR / "provenance.json").read_text())


def test_files_match_their_recorded_checksums_and_stay_small():
    from hfagp.pretrain.loop import file_checksums

    recorded = _provenance()["checksums"]
    present = {k: v for k, v in file_checksums(PRIOR).items() if k != "provenance.json"}
    assert present == recorded
    size = sum(p.stat().st_size for p in PRIOR.rglob("*") if p.is_file())
    assert size < 8 * 2**20


def test_provenance_says_how_it_was_made():
    p = _provenance()
    for key in ("command", "commit", "seed", "data", "best_step", "wall_time_s", "machine", "held_out_metrics"):
        assert key in p, key
    assert p["data"]["identities"] >= 100 and p["held_out_metrics"]["identity_seeds"]
    # Every held-out identity is an evaluation identity (the prior never saw it).
    from avatar_data.worlds.heads import params

    assert all(params.is_evaluation_identity(s) for s in p["held_out_metrics"]["identity_seeds"])


@pytest.mark.slow
def test_a_recorded_held_out_inversion_is_reproduced(tmp_path):
    import eg3d_flax
    from hfagp.pretrain.data import ensure_validation
    from hfagp.pretrain.validate import invert_and_score

    p = _provenance()
    held = p["held_out_metrics"]
    G = eg3d_flax.load_generator(PRIOR)
    seed = held["identity_seeds"][0]
    novel_yaw = [v[0] for v in held["views_deg"][1:]]
    validation = ensure_validation(tmp_path, [seed], novel_yaw, p["data"]["resolution"])
    scores = invert_and_score(G, validation, held["invert_steps"], held["invert_lr"])
    recorded = np.asarray(held["psnr_per_identity_and_view"][0])
    np.testing.assert_allclose(scores["psnr"][0], recorded, atol=PSNR_TOLERANCE_DB)


def test_the_demo_config_trains_from_the_prior():
    import eg3d_flax
    from configs.common import make_config
    from hfagp.model import build_generator

    cfg = make_config("rgb", "demo")
    assert Path(cfg.generator.path) == PRIOR and cfg.data.source == "heads"
    G = build_generator(cfg.generator)
    assert G.config == eg3d_flax.preset("heads128", **{"compute_dtype": G.config.compute_dtype,
                                                       "conv_impl": G.config.conv_impl,
                                                       "upconv_impl": G.config.upconv_impl})
    # w_avg is the prior's average person (the mean scene code), where prior_init='w_avg' starts the basis offset.
    w_avg = np.asarray(G.variables["buffers"]["backbone"]["mapping"]["w_avg"], np.float32)
    assert cfg.model.prior_init == "w_avg" and np.linalg.norm(w_avg) > 0.1
