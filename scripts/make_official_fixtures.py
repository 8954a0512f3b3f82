"""Make the parity fixtures of the official HFA-GP code: run once, with PyTorch, from the user's clones.

    python scripts/make_official_fixtures.py --hfagp PATH/TO/HFA-GP --eg3d PATH/TO/eg3d [--only checkpoint]

`--hfagp` is a clone of bbaaii/HFA-GP (its `code/networks` are imported unmodified), `--eg3d` a clone of
NVlabs/eg3d (HFA-GP's networks import `dnnlib` and `legacy` from it, and its generator classes build the
checkpoint's G). Nothing of either is copied: the outputs are arrays computed by their modules and, for the
generator snapshot, EG3D's pickled module objects with their source left out. `--only` remakes one of the two
fixtures (`encoders` or `checkpoint`); by default both. Needs torch, numpy, scipy, requests and click (EG3D's
modules import them) and pillow (this project's `avatar_data`, for the cameras). Not run in CI; the tests read
the committed outputs without torch.

Outputs (float32 everywhere):

* `tests/convert_weights/fixtures/official_encoders.npz`: the official encoders -- `networks/encoder3d.Encoder`
  (RGB, input 128x128, the official channel table), `networks/headnerf.Weights_3DMM` (3DMM, 76 -> k) and
  the audio stack (`AudioNet` -> [`AudioAttNet`] -> `Weights_3DMM(64)`) -- with fixed weights, inputs,
  outputs and input gradients. For each net `<n>` in (rgb, expression, audio):
    `<n>/keys`, `<n>/shapes` (flattened with `<n>/ndims`), `<n>/scales`: the state dict in `state_dict()`
      order; parameter i is `scales[i] * RandomState(seed + i).standard_normal(shape)` (float32), with
      `<n>/seed`; scale 0 marks a tensor stored as `<n>/buffer/<key>` (the blur kernels, and the RGB
      activation biases, nudged by at most a small fraction of each channel's spread so that no
      pre-activation at the fixture input lies near the leaky ReLU's kink, see `off_the_kink`).
    `<n>/weight_sums`: float64 sums of every tensor, to check a re-made state dict.
  Cases: `rgb` (images [2,128,128,3] NHWC in [-1,1]), `expression` ([3,76]), `audio_plain` (windows
  [3,16,29]: AudioNet -> Weights_3DMM, the official path before `nosmo_iters`) and `audio_smooth` (windows
  [2,8,16,29]: AudioNet per frame, AudioAttNet over the 8 frames, Weights_3DMM, one sample at a time as the
  official trainer): `<case>/input`, `<case>/output` [B,k], `<case>/cotangent` R [B,k] and
  `<case>/input_grad` = d sum(output * R) / d input (NHWC for images).
* `tests/hfagp/fixtures/official_checkpoint/`, an official audio-trainer checkpoint, its generator and renders
  of it. Its G is a small EG3D TriPlaneGenerator built here by EG3D's classes (`CKPT_G_KWARGS`: 128x128 out
  through `SuperresolutionHybrid2X`, channel_base 512 / channel_max 16, one mapping layer, neural rendering 64,
  12 + 12 samples per ray): `torch.manual_seed(0)` init, then every floating-point parameter and buffer but
  the resample filters gets `p += s * randn` (a `torch.Generator` seeded with 1, in state_dict order; s = 0.1,
  0.1 / bias_gain for the mapping biases), as ../shared/fixtures/eg3d/README.md does for tiny128. Every tensor
  of G, of `HeadNeRF_Audio` and of the audio nets is then refilled by `repeating` (its first `PERIOD` entries
  over and over, each repeat shifted by one), which keeps the values' scales but lets xz compress each file
  below 100 KB (from 6 and 12 MB): HeadNeRF_Audio's head (6 layers of width w_dim = 512) and EG3D's
  super-resolution (channels and w_dim = 512 fixed in its classes) are 2M float32 values whatever G's
  backbone is.
  * `generator.pkl.xz`: xz of that G as an EG3D snapshot pickle (`pickle.dump`, protocol 4, of
    {'training_set_kwargs', 'G', 'D': None, 'G_ema', 'augment_pipe': None}, G and G_ema the same object;
    every persistent object's `module_src` is the placeholder `# source omitted: <module>`, as in
    ../shared/fixtures/eg3d), the base generator to convert with `convert_weights`.
  * `300004.pt.xz`: xz of an official audio-trainer checkpoint (`trainer_audio.Trainer.save`: {'gen',
    'AudAttNet', 'AudNet', 'w_optim', 'optimizer_Aud', 'optimizer_AudAtt', 'args'}, the `torch.save` bytes)
    of `HeadNeRF_Audio` with k = 4 and a copy of that G, whose parameters are perturbed (`+ 0.01 * randn`,
    then refilled by `repeating`; standing in for stage-2 tuning, its buffers stay the base's), all
    parameters rounded to bfloat16 precision, saved past the smoothing switch (`nosmo_iters` = 300000).
  * `reference.npz`: cameras `c` [2,25] (EG3D convention), audio windows `windows` [2,8,16,29], and the
    official forward's `smooth_coefficients`, `smooth_latents` [2,14,512] and `smooth_image_sub2`
    ([2,64,64,3], NHWC, every second pixel of the [2,128,128,3] render in both directions) and, without
    smoothing (the centre windows), `plain_coefficients`, `plain_latents`, `plain_image_sub2`. Renders use
    EG3D's renderer with its two random draws made deterministic (as in ../shared/fixtures/eg3d/README.md).
"""

from __future__ import annotations

import argparse
import copy
import io
import lzma
import math
import pickle
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
K = 6
CKPT_K = 4
CKPT_ITER = 300004
PERIOD = 251
CKPT_G_KWARGS = dict(
    z_dim=512, w_dim=512, c_dim=25, img_resolution=128, img_channels=3, sr_num_fp16_res=0,
    mapping_kwargs={"num_layers": 1}, channel_base=512, channel_max=16, fused_modconv_default="inference_only",
    num_fp16_res=0, conv_clamp=None,
    sr_kwargs={"channel_base": 512, "channel_max": 16, "fused_modconv_default": "inference_only"},
    rendering_kwargs={
        "image_resolution": 128, "disparity_space_sampling": False, "clamp_mode": "softplus",
        "superresolution_module": "training.superresolution.SuperresolutionHybrid2X",
        "c_gen_conditioning_zero": False, "gpc_reg_prob": 0.5, "c_scale": 1.0, "superresolution_noise_mode": "none",
        "density_reg": 0.25, "density_reg_p_dist": 0.004, "reg_type": "l1", "decoder_lr_mul": 1.0,
        "sr_antialias": True, "depth_resolution": 12, "depth_resolution_importance": 12, "ray_start": 2.25,
        "ray_end": 3.3, "box_warp": 1, "avg_camera_radius": 2.7, "avg_camera_pivot": [0, 0, 0.2]})
XZ_PRESET = 9


def seeded_state_dict(module, seed: int, scale_of) -> tuple[dict, dict]:
    """Overwrites `module`'s parameters by the fixture recipe; returns (arrays in state_dict order, scales)."""
    import torch

    params = dict(module.named_parameters())
    arrays, scales = {}, {}
    with torch.no_grad():
        for i, (key, value) in enumerate(module.state_dict().items()):
            if key in params:
                scale = float(scale_of(key, tuple(value.shape)))
                draw = np.random.RandomState(seed + i).standard_normal(tuple(value.shape)).astype(np.float32)
                params[key].copy_(torch.from_numpy(draw * np.float32(scale)))
                scales[key] = scale
            else:
                scales[key] = 0.0
            arrays[key] = value.detach().cpu().numpy().copy()
    return arrays, scales


def equalized_scale(key, shape):
    """Equalized-lr layers (EqualConv2d / EqualLinear) draw N(0, 1) weights; biases get 0.1."""
    return 0.1 if key.endswith("bias") else 1.0


def torch_default_scale(key, shape):
    """AD-NeRF's Conv1d / Linear: weights N(0, 1/fan_in) (PyTorch's default init has that scale), biases 0.1."""
    if key.endswith("bias"):
        return 0.1
    return 1.0 / math.sqrt(float(np.prod(shape[1:])))


def off_the_kink(model, x, margin: float = 1e-4) -> list:
    """Nudges the bias of each FusedLeakyReLU of `model` so that no pre-activation at input `x` lies within
    `margin` (relative to the channel's spread) of the leaky ReLU's kink; returns the nudged bias names.

    Near the kink float32 rounding can put the two frameworks on different slopes (1 vs 0.2), which changes
    the input gradient of a whole receptive field; away from it both are the same linear map. Layers are
    handled in forward order (in float64), each channel's bias moved by the smallest shift that leaves zero at
    least margin * std away from all its pre-activations.
    """
    import copy

    import torch

    acts = [(name, m) for name, m in model.named_modules() if type(m).__name__ == "FusedLeakyReLU"]
    nudged, worst = [], 0.0
    for name, act in acts:
        seen = {}
        twin = copy.deepcopy(model).double()
        handle = dict(twin.named_modules())[name].register_forward_hook(
            lambda mod, inp, out: seen.setdefault("pre", (inp[0] + mod.bias).detach()))
        with torch.no_grad():
            twin(x.double())
        handle.remove()
        pre = seen["pre"].transpose(0, 1).reshape(act.bias.numel(), -1).numpy()
        shifts = np.zeros(len(pre))
        for c, v in enumerate(pre):
            width = margin * v.std()
            u = np.sort(np.concatenate([v, [-np.inf, np.inf]]))
            lo, hi = u[:-1] + width, u[1:] - width  # where zero may sit in each gap between neighbours
            ok = lo <= hi
            targets = np.clip(0.0, lo[ok], hi[ok])
            shifts[c] = -targets[np.argmin(np.abs(targets))]
            worst = max(worst, abs(shifts[c]) / v.std())
        with torch.no_grad():
            act.bias.add_(torch.from_numpy(shifts.reshape(act.bias.shape)).float())
        nudged.append(f"{name}.bias")
    print(f"nudged {len(nudged)} activation biases by at most {worst:.2e} of their channel's spread")
    return nudged


def add_net(out: dict, name: str, arrays: dict, scales: dict, seed: int) -> None:
    keys = list(arrays)
    out[f"{name}/keys"] = np.array(keys)
    out[f"{name}/ndims"] = np.array([arrays[k].ndim for k in keys], np.int32)
    out[f"{name}/shapes"] = np.array([d for k in keys for d in arrays[k].shape], np.int32)
    out[f"{name}/scales"] = np.array([scales[k] for k in keys], np.float64)
    out[f"{name}/seed"] = np.array(seed, np.int64)
    out[f"{name}/weight_sums"] = np.array([arrays[k].astype(np.float64).sum() for k in keys])
    for k in keys:
        if scales[k] == 0.0:
            out[f"{name}/buffer/{k}"] = arrays[k]


def encoder_fixtures(headnerf, encoder3d) -> dict:
    import torch

    out = {}
    # RGB: the official Encoder at 128 (channels 128, 256, 512, 512, 512), k outputs.
    rgb = encoder3d.Encoder(128, 512, K).eval()
    arrays, scales = seeded_state_dict(rgb, 1000, equalized_scale)
    images = np.random.RandomState(1).uniform(-1, 1, (2, 128, 128, 3)).astype(np.float32)
    x = torch.from_numpy(images.transpose(0, 3, 1, 2).copy()).requires_grad_(True)
    for key in off_the_kink(rgb, x):
        arrays[key], scales[key] = rgb.state_dict()[key].numpy().copy(), 0.0
    add_net(out, "rgb", arrays, scales, 1000)
    y = rgb(x)
    add_case(out, "rgb", images, y, x, lambda g: g.transpose(0, 2, 3, 1))

    expr = headnerf.Weights_3DMM(input_dim=76, dim=512, dim_shape=K).eval()
    arrays, scales = seeded_state_dict(expr, 2000, equalized_scale)
    add_net(out, "expression", arrays, scales, 2000)
    beta = np.random.RandomState(2).standard_normal((3, 76)).astype(np.float32)
    x = torch.from_numpy(beta).requires_grad_(True)
    add_case(out, "expression", beta, expr(x), x)

    # Audio: AudioNet -> [AudioAttNet] -> Weights_3DMM(64), one set of weights for both cases.
    audio_net, attention = headnerf.AudioNet(64, 16).eval(), headnerf.AudioAttNet().eval()
    head = headnerf.Weights_3DMM(input_dim=64, dim=512, dim_shape=K).eval()
    merged_arrays, merged_scales = {}, {}
    for prefix, net, scale_of, seed in (("audio_net.", audio_net, torch_default_scale, 3000),
                                        ("attention.", attention, torch_default_scale, 4000),
                                        ("head.", head, equalized_scale, 5000)):
        arrays, scales = seeded_state_dict(net, seed, scale_of)
        add_net(out, f"audio/{prefix[:-1]}", arrays, scales, seed)
        merged_arrays.update({prefix + k: v for k, v in arrays.items()})
        merged_scales.update({prefix + k: v for k, v in scales.items()})
    windows = np.random.RandomState(3).standard_normal((3, 16, 29)).astype(np.float32)
    x = torch.from_numpy(windows).requires_grad_(True)
    add_case(out, "audio_plain", windows, head(audio_net(x)), x)
    smooth_in = np.random.RandomState(4).standard_normal((2, 8, 16, 29)).astype(np.float32)
    x = torch.from_numpy(smooth_in).requires_grad_(True)
    feats = torch.stack([attention(audio_net(x[b])) for b in range(x.shape[0])])
    add_case(out, "audio_smooth", smooth_in, head(feats), x)
    return out


def add_case(out: dict, name: str, inputs, y, x, grad_layout=lambda g: g) -> None:
    import torch

    cot = np.random.RandomState(99).standard_normal(tuple(y.shape)).astype(np.float32)
    (y * torch.from_numpy(cot)).sum().backward()
    out[f"{name}/input"] = inputs
    out[f"{name}/output"] = y.detach().numpy().astype(np.float32)
    out[f"{name}/cotangent"] = cot
    out[f"{name}/input_grad"] = grad_layout(x.grad.numpy()).astype(np.float32)


def deterministic_renderer(renderer_module) -> None:
    """EG3D's two random draws made deterministic (no stratified jitter, det=True importance samples)."""
    import torch

    cls = renderer_module.ImportanceRenderer
    stratified, pdf = cls.sample_stratified, cls.sample_pdf

    def sample_stratified(self, *args, **kwargs):
        rand_like = torch.rand_like
        torch.rand_like = torch.zeros_like
        try:
            return stratified(self, *args, **kwargs)
        finally:
            torch.rand_like = rand_like

    def sample_pdf(self, bins, weights, N_importance, det=False, eps=1e-5):
        return pdf(self, bins, weights, N_importance, det=True, eps=eps)

    cls.sample_stratified, cls.sample_pdf = sample_stratified, sample_pdf


def bfloat16_round(module) -> None:
    """Rounds the parameters of `module` to bfloat16 precision (kept float32), so that the committed
    checkpoint compresses; buffers (G's noise maps, w_avg) stay those of the base generator."""
    import torch

    with torch.no_grad():
        for value in module.parameters():
            value.copy_(value.to(torch.bfloat16).to(torch.float32))


def repeating(value, period: int = PERIOD):
    """`value` (a tensor) refilled by its first `period` entries in flat order, over and over, each repeat
    shifted by one entry: flat[n] = flat[(n + n // period) % period]; a tensor of at most `period` entries is
    unchanged. The repeats are long matches for xz, and rows and channels stay distinct."""
    import torch

    n = torch.arange(value.numel())
    return value.reshape(-1)[(n + n // period) % period].reshape(value.shape)


def small_generator(dnnlib, triplane):
    """The checkpoint's base G: `CKPT_G_KWARGS` built by EG3D's class, perturbed (the tiny128 recipe) and
    refilled by `repeating` (parameters and buffers)."""
    import torch

    torch.manual_seed(0)
    kwargs = copy.deepcopy(CKPT_G_KWARGS)
    kwargs["mapping_kwargs"] = dnnlib.EasyDict(kwargs["mapping_kwargs"])  # as train.py builds them
    kwargs["sr_kwargs"] = dnnlib.EasyDict(kwargs["sr_kwargs"])
    G = triplane.TriPlaneGenerator(**kwargs).eval().requires_grad_(False)
    G.neural_rendering_resolution = 64
    modules = dict(G.named_modules())
    rng = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for key, value in G.state_dict(keep_vars=True).items():
            owner, _, leaf = key.rpartition(".")
            if leaf == "resample_filter" or not value.is_floating_point():
                continue
            gain = float(getattr(modules[owner], "bias_gain", 1.0)) if leaf == "bias" else 1.0
            value.add_(0.1 / gain * torch.randn(value.shape, generator=rng))
            value.copy_(repeating(value))
    return G


def snapshot_bytes(G, persistence) -> bytes:
    """G pickled as EG3D's training_loop snapshots are (protocol 4, EG3D's persistence), with every persistent
    class's module source replaced by `# source omitted: <module>` while pickling."""
    sources = {cls: cls._orig_module_src for cls in persistence._decorators}
    try:
        for cls in sources:
            cls._orig_module_src = f"# source omitted: {cls.__bases__[0].__module__}"
        training_set_kwargs = {"class_name": "training.dataset.ImageFolderDataset",
                               "path": "(synthetic fixture, no dataset)", "use_labels": True, "max_size": None,
                               "xflip": False, "resolution": G.img_resolution, "random_seed": 0}
        return pickle.dumps({"training_set_kwargs": training_set_kwargs, "G": G, "D": None, "G_ema": G,
                             "augment_pipe": None}, protocol=4)
    finally:
        for cls, src in sources.items():
            cls._orig_module_src = src


def write_xz(path: Path, data: bytes) -> None:
    path.write_bytes(lzma.compress(data, preset=XZ_PRESET))
    print(f"wrote {path}: {path.stat().st_size:,} bytes ({len(data):,} uncompressed)")


def checkpoint_fixture(headnerf, dnnlib, triplane, persistence, out_dir: Path) -> None:
    import torch

    G = small_generator(dnnlib, triplane)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_xz(out_dir / "generator.pkl.xz", snapshot_bytes(G, persistence))
    torch.manual_seed(0)
    headnerf.load_G_official = lambda args, device, *a, **kw: copy.deepcopy(G)
    args = argparse.Namespace(
        iter=800000, size=256, batch_size=1, dataset="ad_dataset", person_1="french", run_id="nerface2",
        run_id_2=None, out_pose=False, emb_dir="./PTI/embeddings/", person_2=None, params_len=64, d_reg_every=16,
        g_reg_every=4, resume_ckpt=None, lr=3e-4, old=True, tune=False, init=False, channel_multiplier=1,
        start_iter=0, display_freq=100, save_freq=5000, latent_dim_style=512, latent_dim_shape=CKPT_K,
        exp_path="./code/exps/", exp_name="v1", addr="localhost", port="12345", dim_aud=64, win_size=16,
        nosmo_iters=300000, smo_size=8, tune_iter=50000, two_stage=400000)
    gen = headnerf.HeadNeRF_Audio(args, args.size, "cpu", args.latent_dim_style, args.latent_dim_shape,
                                  args.run_id, args.emb_dir).eval()
    audio_net = headnerf.AudioNet(args.dim_aud, args.win_size).eval()
    attention = headnerf.AudioAttNet().eval()
    with torch.no_grad():  # stands in for stage-2 tuning: G differs from the base generator
        gen_rng = torch.Generator().manual_seed(1)
        for name, p in gen.generator.named_parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=gen_rng))
        for net in (gen, audio_net, attention):
            for p in net.parameters():
                p.copy_(repeating(p))
    for net in (gen, audio_net, attention):
        bfloat16_round(net)
    w_optim = torch.optim.Adam(gen.parameters(), lr=args.lr)
    optimizer_aud = torch.optim.Adam(params=list(audio_net.parameters()), lr=args.lr, betas=(0.9, 0.999))
    optimizer_att = torch.optim.Adam(params=list(attention.parameters()), lr=args.lr, betas=(0.9, 0.999))
    saved = io.BytesIO()
    torch.save({"gen": gen.state_dict(), "AudAttNet": attention.state_dict(), "AudNet": audio_net.state_dict(),
                "w_optim": w_optim.state_dict(), "optimizer_Aud": optimizer_aud.state_dict(),
                "optimizer_AudAtt": optimizer_att.state_dict(), "args": args}, saved)
    write_xz(out_dir / f"{str(CKPT_ITER).zfill(6)}.pt.xz", saved.getvalue())

    sys.path.insert(0, str(REPO))
    from avatar_data.cameras import yaw_sweep

    c = np.asarray(yaw_sweep(2, 15.0), np.float32)
    windows = np.random.RandomState(5).standard_normal((2, args.smo_size, 16, 29)).astype(np.float32)
    flipped = c.copy()
    flipped[:, [1, 2, 5, 6, 9, 10]] *= -1  # the official datasets' labels; the forward flips them back
    ref = {"c": c, "windows": windows}
    with torch.no_grad():
        win = torch.from_numpy(windows)
        smooth = torch.stack([attention(audio_net(win[b])) for b in range(len(win))])
        plain = audio_net(win[:, args.smo_size // 2])
        for name, feats in (("smooth", smooth), ("plain", plain)):
            coeffs = gen.weights_3dmm(feats)
            latents = gen.get_latent(coeffs)
            image = gen(feats, torch.from_numpy(flipped.copy()))
            ref[f"{name}_coefficients"] = coeffs.numpy()
            ref[f"{name}_latents"] = latents.numpy()
            ref[f"{name}_image_sub2"] = image.numpy().transpose(0, 2, 3, 1)[:, ::2, ::2].astype(np.float32)
    np.savez_compressed(out_dir / "reference.npz", **ref)
    print(f"wrote {out_dir / 'reference.npz'}: {(out_dir / 'reference.npz').stat().st_size:,} bytes")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hfagp", required=True, help="clone of bbaaii/HFA-GP")
    p.add_argument("--eg3d", required=True, help="clone of NVlabs/eg3d")
    p.add_argument("--only", choices=("encoders", "checkpoint"), default=None,
                   help="make only this fixture (default: both)")
    p.add_argument("--out", default=str(REPO / "tests"), help="the tests/ folder to write into")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(2)
    torch.set_grad_enabled(True)
    sys.path[:0] = [str(Path(args.hfagp) / "code"), str(Path(args.eg3d) / "eg3d")]
    import dnnlib
    from networks import encoder3d, headnerf
    from torch_utils import persistence
    from training import triplane
    from training.volumetric_rendering import renderer

    deterministic_renderer(renderer)
    out = Path(args.out)
    if args.only in (None, "encoders"):
        (out / "convert_weights/fixtures").mkdir(parents=True, exist_ok=True)
        encoders_npz = out / "convert_weights/fixtures/official_encoders.npz"
        np.savez_compressed(encoders_npz, **encoder_fixtures(headnerf, encoder3d))
        print(f"wrote {encoders_npz}")
    if args.only in (None, "checkpoint"):
        checkpoint_fixture(headnerf, dnnlib, triplane, persistence, out / "hfagp/fixtures/official_checkpoint")
    return 0


if __name__ == "__main__":
    sys.exit(main())
