"""PyTorch baseline for `step_throughput.py`: the official EG3D generator's training step, timed on CPU or CUDA.

    python benchmarks/torch_step.py /path/to/eg3d-clone --spec spec.json --stage 2 --steps 20 --json out.json
    python benchmarks/torch_step.py /path/to/eg3d-clone --config ffhq512-128 --device cuda --tf32 off --sr fp16

Run by `step_throughput.py --torch-eg3d PATH` in a subprocess (its own interpreter, e.g. a venv with
torch, numpy, scipy, click and pillow; this file never imports JAX or the library). PATH is a user's
clone of NVlabs/eg3d: the repository root or its inner `eg3d/` folder (the one holding `training/`,
`torch_utils/` and `dnnlib/`). The code is imported from there unmodified; nothing is copied or
downloaded. The spec JSON (written by `step_throughput.py`) holds `GeneratorConfig.to_eg3d_kwargs()`
of the preset, the camera labels and the encoder's settings, so both sides build the same generator.

The step (one Adam update, as in HFA-GP's trainers, `G.train()`, stochastic renderer):
  latent: `--encoder none`: W+ codes ws [B, 14, 512] are the optimised leaf (the baseline of docs/benchmarks.md);
          `--encoder rgb`: ws = RGB encoder(image) @ QR-orthonormalised basis + offset, written here
          in torch after `encoders/rgb.py` and `prior/basis.py` (random init);
  image = G.synthesis(ws, c, noise_mode='const')['image'];  loss = mean((image - target)^2) at the
  spec's loss resolution (area average);  backward;  Adam (stage 1: latent/encoder/basis; stage 2: + G).
Warm-up steps (the first under `torch.utils.flop_counter.FlopCounterMode`, which counts the convolutions
and matmuls; `--warmup`, default 1 on CPU and 3 on CUDA, where cuDNN's autotuner picks its algorithms in
the first steps), then `--steps` timed steps, each followed by `torch.cuda.synchronize()` on CUDA;
reports median/min/max seconds and, on CUDA, `torch.cuda.max_memory_allocated` over the timed steps
(and with the warm-up).

`--device cuda` runs with the official training loop's settings (`training/training_loop.py`):
`torch.backends.cudnn.benchmark = True`, `conv2d_gradfix.enabled = True`, no reduced-precision fp16
reductions, and TF32 for matmuls and cuDNN as `--tf32` says (the official loop: off). EG3D's custom CUDA
kernels (`bias_act`, `upfirdn2d`) are built on first use (nvcc + ninja, cached in torch's extension
folder; `--check --device cuda` builds them); if that fails, the row says so and runs EG3D's reference
ops instead. `--sr fp16` keeps the checkpoint's float16 super-resolution blocks (`sr_num_fp16_res` > 0,
as the released FFHQ 512-128 has them); `--sr float32` passes `force_fp32=True` to the synthesis, so
every block runs in float32 (the same function as the JAX float32 step).

On CPU nothing in EG3D needs patching for speed: its custom CUDA kernels are only used for CUDA tensors
and `conv2d_gradfix` falls back to `torch.nn.functional` off CUDA; synthesis blocks force fp32 off CUDA.
One run-time fix is applied (no EG3D file is edited):
`SuperresolutionHybrid2X/4X` add the ToRGB output in place to `rgb`, which aliases the feature image
that the first SR conv saved for backward, so backward fails in fp32; a forward pre-hook on
`G.superresolution` passes `rgb.clone()` (same values).

Exit status: 0 on success; 2 with a one-line "skipped: ..." on stderr when PATH is not an EG3D clone
or torch cannot be imported (the caller reports the JAX numbers alone).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import sys
import time
from pathlib import Path

SKIP_EXIT = 2
_MARKERS = ("training/triplane.py", "torch_utils/ops/bias_act.py", "dnnlib/util.py")


class Skip(Exception):
    """The baseline cannot run here (not an EG3D clone, torch missing); the message says why."""


def eg3d_source_dir(path: str | os.PathLike) -> Path:
    """The folder to put on sys.path: PATH itself or PATH/eg3d, whichever holds EG3D's packages."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise Skip(f"--torch-eg3d {str(root)!r} is not a directory")
    for cand in (root / "eg3d", root):
        if (cand / "training" / "triplane.py").is_file():
            missing = [m for m in _MARKERS if not (cand / m).is_file()]
            if missing:
                raise Skip(f"{cand} looks like part of an NVlabs/eg3d clone but lacks {', '.join(missing)}")
            return cand.resolve()
    raise Skip(f"{root} is not a clone of NVlabs/eg3d (no training/triplane.py in it or in its eg3d/ folder)")


def import_eg3d(path):
    """Imports torch and EG3D's `TriPlaneGenerator` from the clone; raises Skip with the reason if it can't."""
    src = eg3d_source_dir(path)
    try:
        import torch  # noqa: F401
    except ImportError as e:
        raise Skip(f"torch is not importable by {sys.executable} ({e})") from e
    sys.path.insert(0, str(src))
    try:
        from training.triplane import TriPlaneGenerator
    except Exception as e:  # an incompatible clone or a missing dependency of EG3D (scipy, click, ...)
        raise Skip(f"importing training.triplane from {src} failed: {type(e).__name__}: {e}") from e
    return TriPlaneGenerator


def _clone_rgb_pre_hook(module, args, kwargs):
    """Forward pre-hook on G.superresolution: pass a copy of `rgb` (see module doc)."""
    rgb, *rest = args
    return (rgb.clone(), *rest), kwargs


def build_generator(TriPlaneGenerator, spec: dict, device: str = "cpu"):
    import torch

    G = TriPlaneGenerator(**spec["init_kwargs"])
    G.neural_rendering_resolution = int(spec["neural_rendering_resolution"])
    G.superresolution.register_forward_pre_hook(_clone_rgb_pre_hook, with_kwargs=True)
    return G.train().to(device=device, dtype=torch.float32)


def configure_cuda(tf32: bool) -> None:
    """The official training loop's CUDA settings (training/training_loop.py), TF32 as asked."""
    import torch
    from torch_utils.ops import conv2d_gradfix, grid_sample_gradfix

    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cuda.matmul.allow_fp16_reduced_precision_reduction = False
    conv2d_gradfix.enabled = True
    grid_sample_gradfix.enabled = False


def build_cuda_kernels() -> dict:
    """Builds (or loads from torch's extension cache) EG3D's bias_act and upfirdn2d CUDA kernels.

    Returns {'cuda_kernels': 'built' | 'failed: ...', 'cuda_kernels_s': seconds}. On failure the ops are
    routed to EG3D's reference implementations (their `_init` answers False), so the step still runs."""
    from torch_utils.ops import bias_act, upfirdn2d

    t = time.perf_counter()
    try:
        bias_act._init()
        upfirdn2d._init()
        status = "built"
    except Exception as e:  # nvcc/ninja missing or the sources do not compile against this torch
        bias_act._init = upfirdn2d._init = lambda: False
        status = f"failed: {type(e).__name__}: {str(e).strip().splitlines()[-1] if str(e).strip() else ''}"
    return {"cuda_kernels": status, "cuda_kernels_s": round(time.perf_counter() - t, 1)}


def build_rgb_latent(spec: dict, num_ws: int, w_dim: int):
    """The HFA-GP RGB encoder + basis in torch (mirrors encoders/rgb.py, encoders/layers.py, prior/basis.py)."""
    import torch
    import torch.nn.functional as F

    enc = spec["encoder"]
    slope, gain = 0.2, math.sqrt(2.0)
    blur_k = torch.tensor([1.0, 3.0, 3.0, 1.0])
    blur_k = torch.outer(blur_k, blur_k)
    blur_k = blur_k / blur_k.sum()

    def blur(x, pad):
        c = x.shape[1]
        return F.conv2d(F.pad(x, (pad[0], pad[1], pad[0], pad[1])), blur_k[None, None].expand(c, 1, 4, 4).to(x),
                        groups=c)

    class EqualConv2d(torch.nn.Module):
        def __init__(self, cin, cout, ks, stride=1, padding=0, bias=True):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.randn(cout, cin, ks, ks))
            self.bias = torch.nn.Parameter(torch.zeros(cout)) if bias else None
            self.scale, self.stride, self.padding = 1 / math.sqrt(cin * ks * ks), stride, padding

        def forward(self, x):
            return F.conv2d(x, self.weight * self.scale, self.bias, stride=self.stride, padding=self.padding)

    class ConvLayer(torch.nn.Module):
        def __init__(self, cin, cout, ks, downsample=False, bias=True, activate=True):
            super().__init__()
            self.ks, self.downsample, self.activate = ks, downsample, activate
            self.conv = EqualConv2d(cin, cout, ks, 2 if downsample else 1, 0 if downsample else ks // 2,
                                    bias=bias and not activate)
            self.act_bias = torch.nn.Parameter(torch.zeros(cout)) if activate and bias else None

        def forward(self, x):
            if self.downsample:
                p = 2 + self.ks - 1
                x = blur(x, ((p + 1) // 2, p // 2))
            x = self.conv(x)
            if not self.activate:
                return x
            if self.act_bias is not None:
                return F.leaky_relu(x + self.act_bias[None, :, None, None], slope) * gain
            return F.leaky_relu(x, slope)

    class ResBlock(torch.nn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.conv1 = ConvLayer(cin, cin, 3)
            self.conv2 = ConvLayer(cin, cout, 3, downsample=True)
            self.skip = ConvLayer(cin, cout, 1, downsample=True, bias=False, activate=False)

        def forward(self, x):
            return (self.conv2(self.conv1(x)) + self.skip(x)) / math.sqrt(2.0)

    class EqualLinear(torch.nn.Module):
        def __init__(self, cin, cout, activate):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.randn(cout, cin))
            self.bias = torch.nn.Parameter(torch.zeros(cout))
            self.scale, self.activate = 1 / math.sqrt(cin), activate

        def forward(self, x):
            y = x @ (self.weight * self.scale).T + self.bias
            return F.leaky_relu(y, slope) * gain if self.activate else y

    class RGBLatent(torch.nn.Module):
        def __init__(self):
            super().__init__()
            size, fdim, k = enc["input_size"], enc["feature_dim"], enc["k"]
            ch = lambda r: min(enc["channel_base"] // r, enc["channel_max"])  # noqa: E731
            log_size = int(math.log2(size))
            layers = [ConvLayer(3, ch(size), 1)]
            for log_res in range(log_size, 2, -1):
                layers.append(ResBlock(ch(2 ** log_res), ch(2 ** (log_res - 1))))
            layers.append(EqualConv2d(ch(4), fdim, 4, bias=False))
            self.trunk = torch.nn.Sequential(*layers)
            n = enc["mlp_layers"]
            self.fc = torch.nn.Sequential(*[EqualLinear(fdim, k if i == n - 1 else fdim,
                                                        enc["nonlinear"] and i < n - 1) for i in range(n)])
            draw = torch.randn(k, num_ws * w_dim)
            self.basis = torch.nn.Parameter(draw)
            self.offset = torch.nn.Parameter(draw.mean(0))

        def forward(self, images):
            size = enc["input_size"]
            if images.shape[-2:] != (size, size):
                images = F.interpolate(images, size=(size, size), mode="bilinear", antialias=True,
                                       align_corners=False)
            coeffs = self.fc(self.trunk(images).flatten(1))
            q, _ = torch.linalg.qr((self.basis + 1e-8).T, mode="reduced")
            return (coeffs @ q.T + self.offset).view(images.shape[0], num_ws, w_dim)

    return RGBLatent()


def peak_rss_mb() -> int:
    """Peak RSS of this process. VmHWM, because ru_maxrss survives exec and would report the parent's peak."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def conv_rate_gflops(batch=2, size=128, channels=128, reps=5, device="cpu") -> float:
    """Best-of-`reps` GFLOP/s of a 3x3 same-padded NCHW conv (the same shape `step_throughput` times in JAX)."""
    import torch
    import torch.nn.functional as F

    x = torch.randn(batch, channels, size, size, device=device)
    w = torch.randn(channels, channels, 3, 3, device=device)
    flops = 2.0 * batch * size * size * channels * channels * 9
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    best = math.inf
    with torch.no_grad():
        F.conv2d(x, w, padding=1)
        sync()
        for _ in range(reps):
            t = time.perf_counter()
            F.conv2d(x, w, padding=1)
            sync()
            best = min(best, time.perf_counter() - t)
    return flops / best / 1e9


def measure(TriPlaneGenerator, spec: dict, *, batch: int, stage: int, steps: int, encoder: str,
            threads: int | None = None, device: str = "cpu", tf32: bool = False, sr: str = "float32",
            warmup: int | None = None, seed: int = 0) -> dict:
    """Times the step; `device` 'cpu' or 'cuda' (with the official CUDA settings, `configure_cuda`)."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    load_before = os.getloadavg()[0]
    cuda = device == "cuda"
    if cuda and not torch.cuda.is_available():
        raise Skip(f"--device cuda, but torch {torch.__version__} sees no CUDA device")
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    extra = {}
    if cuda:
        configure_cuda(tf32)
        extra = build_cuda_kernels()
    warmup = warmup if warmup is not None else (3 if cuda else 1)
    G = build_generator(TriPlaneGenerator, spec, device)
    sr_fp16 = cuda and sr == "fp16" and int(spec["init_kwargs"].get("sr_num_fp16_res", 0)) > 0
    synthesis_kwargs = {} if sr_fp16 else {"force_fp32": True}
    res = int(spec["init_kwargs"]["img_resolution"])
    loss_res = int(spec.get("loss_resolution", res))
    labels = np.asarray(spec["labels"], np.float32)
    if labels.shape != (batch, 25):
        raise ValueError(f"spec labels have shape {labels.shape}, want ({batch}, 25)")
    c = torch.from_numpy(labels).to(device)
    rng = np.random.default_rng(0)  # the JAX side's target images, NHWC -> NCHW
    target = torch.from_numpy(rng.uniform(-1, 1, (batch, res, res, 3)).astype(np.float32)).permute(0, 3, 1, 2)
    target = target.contiguous().to(device)
    num_ws, w_dim = G.backbone.num_ws, G.w_dim
    if encoder == "none":
        with torch.no_grad():
            ws0 = G.mapping(torch.randn(batch, G.z_dim).to(device), c)
        ws = ws0.clone().requires_grad_(True)
        latent_params, latent_fn = [ws], (lambda: ws)
    elif encoder == "rgb":
        rgb_latent = build_rgb_latent(spec, num_ws, w_dim).train().to(device)
        latent_params, latent_fn = list(rgb_latent.parameters()), (lambda: rgb_latent(target))
    else:
        raise ValueError(f"unknown encoder {encoder!r}")
    G.requires_grad_(stage == 2)
    params = latent_params + ([p for p in G.parameters()] if stage == 2 else [])
    lr = float(spec.get("learning_rate", 3e-4))
    opt = torch.optim.Adam(params, lr=lr, betas=(0.9, 0.999), eps=1e-8)

    def loss_of(image):
        if loss_res != res:
            image = F.adaptive_avg_pool2d(image, loss_res)
            tgt = F.adaptive_avg_pool2d(target, loss_res)
        else:
            tgt = target
        return torch.mean(torch.square(image - tgt))

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def step():
        opt.zero_grad(set_to_none=True)
        out = G.synthesis(latent_fn(), c, noise_mode="const", **synthesis_kwargs)
        loss = loss_of(out["image"])
        loss.backward()
        opt.step()
        return loss.detach()

    counter = FlopCounterMode(display=False)
    t0 = time.perf_counter()
    with counter:
        loss = step()
    for _ in range(warmup - 1):
        loss = step()
    sync()
    warmup_s = time.perf_counter() - t0
    if cuda:
        extra["cuda_max_memory_allocated_with_warmup_bytes"] = int(torch.cuda.max_memory_allocated())
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        loss = step()
        sync()
        times.append(time.perf_counter() - t)
    if cuda:
        extra["cuda_max_memory_allocated_bytes"] = int(torch.cuda.max_memory_allocated())
        extra["cuda_device"] = torch.cuda.get_device_name()
        extra["cudnn_version"] = torch.backends.cudnn.version()
    med = statistics.median(times) if times else None
    flops = float(counter.get_total_flops())
    return {
        "side": "torch", "config": spec.get("config"), "encoder": encoder, "stage": stage, "batch": batch,
        "device": device, "tf32": tf32, "sr_dtype": "float16" if sr_fp16 else "float32", "warmup_steps": warmup,
        "threads": torch.get_num_threads(), "torch_version": torch.__version__, **extra,
        "neural_rendering_resolution": G.neural_rendering_resolution,
        "params_optimised": int(sum(p.numel() for p in params)),
        "warmup_s": round(warmup_s, 3), "step_s_median": round(med, 4) if times else None,
        "step_s_min": round(min(times), 4) if times else None, "step_s_max": round(max(times), 4) if times else None,
        "step_times_s": [round(t, 4) for t in times],
        "flops_per_step_counted": flops,
        "achieved_gflops": round(flops / med / 1e9, 2) if times and med > 0 else None,
        "peak_host_rss_mb": peak_rss_mb(),
        "loss": float(loss), "loadavg_1m_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }


def spec_from_library(config_name: str, batch: int, nrr: int | None) -> dict:
    """The spec `step_throughput.py` writes for the same preset (needs the library, i.e. JAX, importable here)."""
    here = Path(__file__).resolve().parent
    sys.path.insert(0, str(here.parent))
    sys.path.insert(0, str(here))
    try:
        from step_throughput import torch_spec
    except ImportError as e:
        raise SystemExit(f"--config needs the library (JAX) importable by {sys.executable} ({e}); "
                         "run through step_throughput.py --torch-eg3d, or pass --spec") from e
    return torch_spec(config_name, batch, nrr)


def _positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (this file imports nothing of the library, not even its CLI helpers)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("eg3d_path", help="clone of NVlabs/eg3d (root or its eg3d/ folder)")
    p.add_argument("--spec", default=None, help="JSON spec written by step_throughput.py")
    p.add_argument("--config", default=None, help="preset name (without --spec: needs the library importable)")
    p.add_argument("--nrr", type=int, default=None, help="neural rendering resolution (with --config)")
    p.add_argument("--batch", type=_positive_int, default=2)
    p.add_argument("--stage", type=int, default=2, choices=[1, 2])
    p.add_argument("--steps", type=int, default=20, help="timed steps after the warm-up (0: warm-up only)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps (default: 1 on CPU, 3 on CUDA)")
    p.add_argument("--encoder", default="none", choices=["none", "rgb"])
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads (default: torch's own)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--tf32", default="off", choices=["off", "on"],
                   help="TF32 for CUDA matmuls and cuDNN convolutions (the official training loop: off)")
    p.add_argument("--sr", default="fp16", choices=["fp16", "float32"],
                   help="on CUDA: the checkpoint's float16 SR blocks, or every block in float32 (force_fp32)")
    p.add_argument("--conv-rate", action="store_true", help="also time a 3x3 conv (GFLOP/s) in torch")
    p.add_argument("--json", default=None, help="write the result here")
    p.add_argument("--check", action="store_true",
                   help="only check that torch and EG3D import (with --device cuda: that CUDA works, and build "
                        "EG3D's CUDA kernels); exit 0 or 2")
    args = p.parse_args(argv)
    try:
        TriPlaneGenerator = import_eg3d(args.eg3d_path)
    except Skip as e:
        print(f"skipped: {e}", file=sys.stderr)
        return SKIP_EXIT
    if args.check:
        import torch

        src = eg3d_source_dir(args.eg3d_path)
        line = f"ok: torch {torch.__version__}, training.triplane.TriPlaneGenerator from {src}"
        if args.device == "cuda":
            if not torch.cuda.is_available():
                print(f"skipped: torch {torch.__version__} sees no CUDA device", file=sys.stderr)
                return SKIP_EXIT
            kernels = build_cuda_kernels()
            line += f"; {torch.cuda.get_device_name()}; CUDA kernels {kernels['cuda_kernels']} " \
                    f"({kernels['cuda_kernels_s']} s)"
        print(line)
        return 0
    if args.spec:
        spec = json.loads(Path(args.spec).read_text())
        if args.config and spec.get("config") != args.config:
            raise SystemExit(f"--config {args.config} but the spec is for {spec.get('config')}")
    elif args.config:
        spec = spec_from_library(args.config, args.batch, args.nrr)
    else:
        raise SystemExit("give --spec (from step_throughput.py) or --config")
    if args.encoder == "rgb" and "encoder" not in spec:
        raise SystemExit("--encoder rgb needs the encoder settings in the spec (step_throughput.py writes them)")
    try:
        result = measure(TriPlaneGenerator, spec, batch=args.batch, stage=args.stage, steps=args.steps,
                         encoder=args.encoder, threads=args.threads, device=args.device, tf32=args.tf32 == "on",
                         sr=args.sr, warmup=args.warmup)
    except Skip as e:
        print(f"skipped: {e}", file=sys.stderr)
        return SKIP_EXIT
    if args.conv_rate:
        result["conv_gflops"] = round(conv_rate_gflops(device=args.device), 1)
    print(json.dumps(result), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
