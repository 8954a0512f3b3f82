"""One-time converter: torchvision ImageNet AlexNet/VGG16 + lpips v0.1 heads -> LPIPS weights npz.

Run once on a machine with torch (and internet, unless both files are given):

    python -m convert_weights.lpips --net alex \\
        --heads <site-packages>/lpips/weights/v0.1/alex.pth \\
        --backbone ~/.cache/torch/hub/checkpoints/alexnet-owt-7be5be79.pth \\
        --out lpips_alex.npz

(VGG: `--net vgg`, `vgg.pth`, `vgg16-397923af.pth`.) Without `--heads` the heads are taken from an
installed `lpips` package; without `--backbone` torchvision downloads its IMAGENET1K_V1 weights,
which is what `lpips.LPIPS(pretrained=True)` uses.

The npz has the layout `hfagp.lpips.load_lpips_params` reads (the same as the test fixtures):
lpips' torch state_dict names, `scaling_layer.shift|scale` [1, 3, 1, 1], backbone convs
`net.slice<S>.<i>.weight` OIHW and `.bias` [O] (float32), heads `lin<K>.model.1.weight`
[1, C_K, 1, 1], plus a `meta_json` string. This module needs only numpy (torch is imported in
`main`), so it runs where jax is not installed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from hfagp_common import cli

NAME = "convert_weights.lpips"

# torchvision `features` indices of the convs in each of lpips' five slices.
TORCHVISION_SLICES = {
    "alex": ((0,), (3,), (6,), (8,), (10,)),
    "vgg": ((0, 2), (5, 7), (10, 12, 14), (17, 19, 21), (24, 26, 28)),
}
# lpips.pretrained_networks.ScalingLayer buffers.
SCALING_SHIFT = (-0.030, -0.088, -0.188)
SCALING_SCALE = (0.458, 0.448, 0.450)
TORCHVISION_ARCH = {"alex": "alexnet", "vgg": "vgg16"}


def _head_array(heads: Mapping[str, np.ndarray], k: int) -> np.ndarray:
    """Head K from either of lpips' aliases (`linK.model.1.weight`, `lins.K.model.1.weight`)."""
    names = [f"lin{k}.model.1.weight", f"lins.{k}.model.1.weight"]
    found = [np.asarray(heads[n]) for n in names if n in heads]
    if not found:
        raise ValueError(f"heads file has no {names[0]!r} (nor {names[1]!r})")
    if len(found) == 2 and not np.array_equal(found[0], found[1]):
        raise ValueError(f"heads file: {names[0]!r} and its alias {names[1]!r} differ")
    return found[0]


def convert_state_dicts(
    net: str, backbone: Mapping[str, np.ndarray], heads: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Rename torchvision + lpips state_dict arrays to the LPIPS npz layout.

    Args:
      net: 'alex' or 'vgg'.
      backbone: torchvision `alexnet()` / `vgg16()` state_dict as numpy arrays
        (`features.<i>.weight|bias`; `classifier.*` is ignored).
      heads: lpips `weights/v0.1/<net>.pth` as numpy arrays (`lin<K>.model.1.weight`).
    Returns:
      npz key -> float32 array, without `meta_json`.
    """
    if net not in TORCHVISION_SLICES:
        raise ValueError(f"net must be one of {tuple(TORCHVISION_SLICES)}, got {net!r}")
    out = {
        "scaling_layer.shift": np.asarray(SCALING_SHIFT, np.float32).reshape(1, 3, 1, 1),
        "scaling_layer.scale": np.asarray(SCALING_SCALE, np.float32).reshape(1, 3, 1, 1),
    }
    used = set()
    in_channels = 3
    for s, indices in enumerate(TORCHVISION_SLICES[net], start=1):
        for i in indices:
            for kind in ("weight", "bias"):
                src = f"features.{i}.{kind}"
                if src not in backbone:
                    raise ValueError(
                        f"backbone state_dict has no {src!r}: is it torchvision "
                        f"{TORCHVISION_ARCH[net]} (without batch norm)?"
                    )
                used.add(src)
                out[f"net.slice{s}.{i}.{kind}"] = np.asarray(backbone[src], np.float32)
            weight = out[f"net.slice{s}.{i}.weight"]
            bias = out[f"net.slice{s}.{i}.bias"]
            if weight.ndim != 4 or weight.shape[1] != in_channels or bias.shape != weight.shape[:1]:
                raise ValueError(
                    f"backbone features.{i}: weight {weight.shape} / bias {bias.shape} do not fit "
                    f"an OIHW conv with {in_channels} input channels"
                )
            in_channels = weight.shape[0]
        head = np.asarray(_head_array(heads, s - 1), np.float32)
        if head.shape != (1, in_channels, 1, 1):
            raise ValueError(
                f"head lin{s - 1}: shape {head.shape}, expected {(1, in_channels, 1, 1)}"
            )
        out[f"lin{s - 1}.model.1.weight"] = head
    leftovers = sorted(k for k in backbone if k not in used and not k.startswith("classifier."))
    if leftovers:
        raise ValueError(f"backbone state_dict has unexpected keys {leftovers}")
    head_names = {f"lin{k}.model.1.weight" for k in range(5)}
    head_names |= {f"lins.{k}.model.1.weight" for k in range(5)}
    unknown = sorted(k for k in heads if k not in head_names)
    if unknown:
        raise ValueError(f"heads file has unexpected keys {unknown}")
    return out


def _load_torch_state_dict(path: Path) -> dict[str, np.ndarray]:
    try:
        import torch
    except ImportError as e:
        raise SystemExit("convert_weights.lpips needs torch to read .pth files") from e

    state = torch.load(path, map_location="cpu", weights_only=True)
    return {k: v.detach().cpu().float().numpy() for k, v in state.items()}


def _default_heads_path(net: str) -> Path:
    try:
        import lpips
    except ImportError as e:
        raise SystemExit("--heads not given and the `lpips` package is not installed") from e
    return Path(lpips.__file__).parent / "weights" / "v0.1" / f"{net}.pth"


def _download_backbone(net: str) -> dict[str, np.ndarray]:
    import torchvision

    if net == "alex":
        model = torchvision.models.alexnet(weights=torchvision.models.AlexNet_Weights.IMAGENET1K_V1)
    else:
        model = torchvision.models.vgg16(weights=torchvision.models.VGG16_Weights.IMAGENET1K_V1)
    return {k: v.detach().cpu().float().numpy() for k, v in model.state_dict().items()}


def build_parser() -> cli.ArgumentParser:
    parser = cli.ArgumentParser(NAME, description=__doc__.split("\n\n")[0])
    parser.add_argument("--net", required=True, choices=sorted(TORCHVISION_SLICES))
    parser.add_argument("--heads", type=cli.path_object, help="lpips weights/v0.1/<net>.pth")
    parser.add_argument("--backbone", type=cli.path_object, help="torchvision ImageNet state_dict .pth")
    parser.add_argument("--out", type=cli.path_object, required=True, help="output .npz")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The command; returns its exit status (0, or 2 with one error line `convert_weights.lpips: error: ...`)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.out.suffix != ".npz":
        parser.error(f"--out must end in .npz, got {args.out}")
    return cli.run(NAME, lambda: _main(args))


def _main(args) -> int:
    for flag, path in (("--heads", args.heads), ("--backbone", args.backbone)):
        if path is not None and not path.is_file():
            raise FileNotFoundError(f"{flag} {path} does not exist")
    heads_path = args.heads or _default_heads_path(args.net)
    heads = _load_torch_state_dict(heads_path)
    if args.backbone is not None:
        backbone = _load_torch_state_dict(args.backbone)
        backbone_source = str(args.backbone)
    else:
        backbone = _download_backbone(args.net)
        backbone_source = f"torchvision {TORCHVISION_ARCH[args.net]} IMAGENET1K_V1"
    arrays = convert_state_dicts(args.net, backbone, heads)
    meta = {
        "net": args.net,
        "lpips_version": "0.1",
        "heads": str(heads_path),
        "backbone": backbone_source,
        "backbone_storage": {"dtype": "float32"},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(f".{args.out.name}.tmp.npz")
    try:  # complete or absent: written beside, then renamed
        np.savez_compressed(tmp, meta_json=np.asarray(json.dumps(meta)), **arrays)
        tmp.replace(args.out)
    finally:
        tmp.unlink(missing_ok=True)
    print(f"wrote {args.out} ({len(arrays)} tensors, net={args.net})")
    return 0


if __name__ == "__main__":
    cli.exit(main())
