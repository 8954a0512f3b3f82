"""The full FFHQ 512-128 generator (random weights) runs one jitted forward on CPU."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import eg3d_flax


@pytest.mark.slow
def test_full_ffhq512_forward_and_point_queries():
    cfg = eg3d_flax.preset("ffhq512-128")
    G = eg3d_flax.random_generator(cfg, seed=0)
    n_params, n_buffers = eg3d_flax.count_parameters(G.variables)
    assert (n_params, n_buffers) == (30_662_136, 831_024)
    z = jax.random.normal(jax.random.PRNGKey(0), (1, 512))
    c = jnp.asarray(np.concatenate([np.eye(4)[[0, 1, 2]].reshape(-1)[:12], [0, 0, 0, 1],
                                    [4.2647, 0, 0.5, 0, 4.2647, 0.5, 0, 0, 1]])[None], jnp.float32)
    c = c.at[0, 11].set(2.7)  # camera at z=2.7
    c = c.at[0, 5].set(-1.0).at[0, 10].set(-1.0)  # OpenCV: looking down -z at the origin
    out = G(z, c, truncation_psi=0.7)
    assert out["image"].shape == (1, 512, 512, 3)
    assert out["image_raw"].shape == (1, 128, 128, 3)
    assert out["image_depth"].shape == (1, 128, 128, 1)
    assert np.isfinite(np.asarray(out["image"])).all()
    depth = np.asarray(out["image_depth"])
    assert depth.min() >= 2.25 - 1e-4 and depth.max() <= 3.3 + 1e-4
    ws = G.mapping(z, c)
    pts = jax.random.uniform(jax.random.PRNGKey(1), (1, 64, 3), minval=-0.5, maxval=0.5)
    q = G.sample(pts, ws)
    assert q["sigma"].shape == (1, 64, 1) and q["rgb"].shape == (1, 64, 32)
