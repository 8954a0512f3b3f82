"""What the prior knows: held-out identities inverted in W+ from one frontal view (generator frozen), then
rendered at that view and at novel views, against the head world's ground truth."""

from __future__ import annotations

import numpy as np

import eg3d_flax
from hfagp import metrics


def inversion_config(steps: int, lr: float, latent_space: str = "w+"):
    """PTI's projector (`hfagp.eval.pti.invert_latent`) as a plain fit in W+ (a code per layer) or W (one code
    on every layer, the space the auto-decoder trained its scene codes in): deterministic rendering, L2 only, no
    noise maps and no code noise, from the generator's w_avg."""
    from hfagp.eval.pti import PTIConfig

    return PTIConfig(w_steps=int(steps), g_steps=0, w_lr=float(lr), lpips_weight=0.0, optimize_noise=False,
                     w_noise_factor=0.0, render_deterministic=True, w_std_samples=1, latent_space=latent_space,
                     start="w_avg", invert_distance="l2_lpips")


def invert_and_score(generator: eg3d_flax.Generator, validation: dict, steps: int, lr: float,
                     latent_space: str = "w+") -> dict:
    """Inverts each validation identity from its frontal view (view 0) in `latent_space` and scores every view.

    validation: `hfagp.pretrain.data.ensure_validation`'s dict. Returns {'psnr' [I, V], 'ssim' [I, V],
    'renders' float32 [I, V, R, R, 3] clipped to [-1, 1], 'ws' [I, num_ws, w_dim], and the means
    'same_view_psnr', 'novel_view_psnr', 'gap_db' (same minus novel), 'same_view_ssim', 'novel_view_ssim'}; with
    the validation's part labels also 'face_psnr' and 'detail_ratio' [I, V] (`hfagp.metrics`: PSNR and the
    render's share of the truth's high-frequency energy in the face region) and their means
    'same_view_face_psnr', 'novel_view_face_psnr', 'same_view_detail_ratio', 'novel_view_detail_ratio'.
    """
    import jax.numpy as jnp

    from hfagp.eval.pti import invert_latent

    config = inversion_config(steps, lr, latent_space)
    images, labels = validation["image"], validation["label"]
    psnr, ssim, renders, codes = [], [], [], []
    for i in range(len(images)):
        ws, _ = invert_latent(generator, images[i, 0], labels[i, 0], config=config)
        views = labels[i]
        out = generator.synthesis(jnp.broadcast_to(jnp.asarray(ws), (len(views),) + ws.shape), views)["image"]
        out = np.clip(np.asarray(out, np.float32), -1.0, 1.0)
        psnr.append(np.asarray(metrics.psnr(out, images[i])))
        ssim.append(np.asarray(metrics.ssim(out, images[i])))
        renders.append(out)
        codes.append(ws)
    psnr, ssim = np.stack(psnr).astype(np.float64), np.stack(ssim).astype(np.float64)
    face = face_region_scores(np.stack(renders), images, validation) if "part_labels" in validation else {}
    return {**face, "psnr": psnr, "ssim": ssim, "renders": np.stack(renders), "ws": np.stack(codes),
            "same_view_psnr": float(psnr[:, 0].mean()), "novel_view_psnr": float(psnr[:, 1:].mean()),
            "gap_db": float(psnr[:, 0].mean() - psnr[:, 1:].mean()),
            "same_view_ssim": float(ssim[:, 0].mean()), "novel_view_ssim": float(ssim[:, 1:].mean())}


def face_region_scores(renders: np.ndarray, images: np.ndarray, validation: dict) -> dict:
    """Face PSNR and detail ratio [I, V] of renders against the validation images ([I, V, R, R, 3] in [-1, 1]),
    in the face region of the validation's part labels [I, V, R, R], and their means over the frontal view and
    over the novel views (nan-free: a view without a visible face is left out of the means)."""
    flat = lambda x: x.reshape((-1,) + x.shape[2:])
    regions = metrics.face_regions(flat(validation["part_labels"]), validation["part_names"])
    shape = images.shape[:2]
    out = {"face_psnr": metrics.masked_psnr(flat(renders), flat(images), regions["face"]).reshape(shape),
           "detail_ratio": metrics.detail_ratio(flat(renders), flat(images), regions["face"]).reshape(shape)}
    for name in ("face_psnr", "detail_ratio"):
        values = out[name]
        out[f"same_view_{name}"] = metrics.mean_or_nan(values[:, 0][np.isfinite(values[:, 0])])
        out[f"novel_view_{name}"] = metrics.mean_or_nan(values[:, 1:][np.isfinite(values[:, 1:])])
    return out
