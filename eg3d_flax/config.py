"""Generator configuration: what a checkpoint says about its architecture, as one frozen dataclass.

`GeneratorConfig.from_eg3d_kwargs` reads the init kwargs of EG3D's `TriPlaneGenerator` (as stored
in a snapshot pickle) plus its `neural_rendering_resolution` attribute, so users never type
architecture hyperparameters. Unknown architecture options raise instead of being ignored.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Optional

import conv_kernels
from eg3d_flax.rendering import RenderOptions
from eg3d_flax.superresolution import SR_SPECS

COMPUTE_DTYPES = ("float32", "bfloat16")
# Rematerialisation (jax.checkpoint) policies: what the backward pass recomputes instead of storing.
#   none      store every activation (fastest; the default)
#   renderer  recompute each tri-plane sampling + OSG-decoder pass (its per-sample features and
#             hidden activations are the largest saved tensors at 128x128 neural rendering)
#   full      also recompute every StyleGAN2 synthesis / super-resolution block from its inputs
REMAT_POLICIES = ("none", "renderer", "full")


@dataclasses.dataclass(frozen=True)
class GeneratorConfig:
    """Everything that defines an EG3D tri-plane generator's function (not its weights)."""

    z_dim: int = 512
    c_dim: int = 25
    w_dim: int = 512
    img_resolution: int = 512
    img_channels: int = 3
    channel_base: int = 32768
    channel_max: int = 512
    mapping_layers: int = 2
    mapping_lr_multiplier: float = 0.01
    backbone_conv_clamp: Optional[float] = None
    sr_module: str = "SuperresolutionHybrid8XDC"
    sr_num_fp16_res: int = 4
    sr_antialias: bool = True
    superresolution_noise_mode: str = "none"
    decoder_lr_mul: float = 1.0
    c_gen_conditioning_zero: bool = False
    c_scale: float = 1.0
    neural_rendering_resolution: int = 128
    render: RenderOptions = RenderOptions()
    avg_camera_radius: float = 2.7
    avg_camera_pivot: tuple = (0.0, 0.0, 0.2)
    compute_dtype: str = "float32"
    remat: str = "none"  # one of REMAT_POLICIES; changes memory and speed, never the values
    # Convolution kernels (`conv_kernels`): 'auto' picks per backend when a `Generator` is built
    # (`resolve_kernels`); like remat they change speed, never the values.
    conv_impl: str = "auto"      # 'auto' | 'xla' | 'cpu_gemm' (weight gradients)
    upconv_impl: str = "auto"    # 'auto' | 'xla' | 'polyphase' (stride-2 transposed 3x3 convolutions)

    # Fixed by EG3D's TriPlaneGenerator: a 256x256, 3x32-channel tri-plane backbone.
    plane_resolution: int = 256
    plane_channels: int = 32

    def __post_init__(self):
        if self.sr_module not in SR_SPECS:
            raise ValueError(f"unknown super-resolution module {self.sr_module!r}; known: {sorted(SR_SPECS)}")
        if SR_SPECS[self.sr_module][1] != self.img_resolution:
            raise ValueError(f"{self.sr_module} outputs {SR_SPECS[self.sr_module][1]}px, "
                             f"but img_resolution is {self.img_resolution}")
        if self.compute_dtype not in COMPUTE_DTYPES:
            raise ValueError(f"compute_dtype must be one of {COMPUTE_DTYPES}, got {self.compute_dtype!r}")
        if self.remat not in REMAT_POLICIES:
            raise ValueError(f"remat must be one of {REMAT_POLICIES}, got {self.remat!r}")
        if self.conv_impl not in conv_kernels.CONV_IMPLS:
            raise ValueError(f"conv_impl must be one of {conv_kernels.CONV_IMPLS}, got {self.conv_impl!r}")
        if self.upconv_impl not in conv_kernels.UPCONV_IMPLS:
            raise ValueError(f"upconv_impl must be one of {conv_kernels.UPCONV_IMPLS}, got {self.upconv_impl!r}")

    @property
    def sr_conv_clamp(self) -> Optional[float]:
        """The reference SR uses conv_clamp=256 exactly when its blocks were built for fp16."""
        return 256.0 if self.sr_num_fp16_res > 0 else None

    @property
    def num_ws(self) -> int:
        from eg3d_flax.layers import synthesis_num_ws
        return synthesis_num_ws(self.plane_resolution)

    def replace(self, **changes) -> "GeneratorConfig":
        return dataclasses.replace(self, **changes)

    def resolve_kernels(self, backend: Optional[str] = None) -> "GeneratorConfig":
        """This config with 'auto' kernels replaced by the backend's choice (`conv_kernels.resolve`)."""
        return self.replace(conv_impl=conv_kernels.resolve("conv", self.conv_impl, backend),
                            upconv_impl=conv_kernels.resolve("upconv", self.upconv_impl, backend))

    @property
    def kernels_resolved(self) -> bool:
        return "auto" not in (self.conv_impl, self.upconv_impl)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["avg_camera_pivot"] = list(self.avg_camera_pivot)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "GeneratorConfig":
        d = dict(d)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown generator config keys: {unknown}")
        if "render" in d:
            d["render"] = RenderOptions(**d["render"])
        if "avg_camera_pivot" in d:
            d["avg_camera_pivot"] = tuple(d["avg_camera_pivot"])
        return cls(**d)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_eg3d_kwargs(cls, init_kwargs: dict, neural_rendering_resolution: int) -> "GeneratorConfig":
        """From `TriPlaneGenerator._init_kwargs` (plain dicts) and its `neural_rendering_resolution`."""
        kw = dict(init_kwargs)
        rk = dict(kw.pop("rendering_kwargs"))
        mapping = dict(kw.pop("mapping_kwargs", {}) or {})
        sr_kwargs = dict(kw.pop("sr_kwargs", {}) or {})
        sr_module = rk["superresolution_module"].rsplit(".", 1)[-1]
        allowed_mapping = {"num_layers", "lr_multiplier"}
        if set(mapping) - allowed_mapping:
            raise ValueError(f"unsupported mapping_kwargs: {sorted(set(mapping) - allowed_mapping)}")
        ignored_sr = {"channel_base", "channel_max", "fused_modconv_default", "num_fp16_res", "conv_clamp"}
        if set(sr_kwargs) - ignored_sr:
            raise ValueError(f"unsupported sr_kwargs: {sorted(set(sr_kwargs) - ignored_sr)}")
        architecture = kw.pop("architecture", "skip")
        if architecture != "skip":
            raise ValueError(f"only the 'skip' synthesis architecture is supported, got {architecture!r}")
        consumed = {"z_dim", "c_dim", "w_dim", "img_resolution", "img_channels", "channel_base", "channel_max",
                    "num_fp16_res", "conv_clamp", "sr_num_fp16_res", "fused_modconv_default"}
        unknown = sorted(set(kw) - consumed)
        if unknown:
            raise ValueError(f"unsupported TriPlaneGenerator kwargs: {unknown}")
        render = RenderOptions(
            depth_resolution=int(rk["depth_resolution"]),
            depth_resolution_importance=int(rk["depth_resolution_importance"]),
            ray_start=rk["ray_start"], ray_end=rk["ray_end"], box_warp=float(rk["box_warp"]),
            clamp_mode=rk.get("clamp_mode", "softplus"),
            disparity_space_sampling=bool(rk.get("disparity_space_sampling", False)),
            white_back=bool(rk.get("white_back", False)),
            density_noise=float(rk.get("density_noise", 0.0)),
        )
        conv_clamp = kw.get("conv_clamp")
        return cls(
            z_dim=int(kw["z_dim"]), c_dim=int(kw["c_dim"]), w_dim=int(kw["w_dim"]),
            img_resolution=int(kw["img_resolution"]), img_channels=int(kw["img_channels"]),
            channel_base=int(kw.get("channel_base", 32768)), channel_max=int(kw.get("channel_max", 512)),
            mapping_layers=int(mapping.get("num_layers", 8)),
            mapping_lr_multiplier=float(mapping.get("lr_multiplier", 0.01)),
            backbone_conv_clamp=None if conv_clamp is None else float(conv_clamp),
            sr_module=sr_module, sr_num_fp16_res=int(kw.get("sr_num_fp16_res", 0)),
            sr_antialias=bool(rk.get("sr_antialias", True)),
            superresolution_noise_mode=rk.get("superresolution_noise_mode", "none"),
            decoder_lr_mul=float(rk.get("decoder_lr_mul", 1.0)),
            c_gen_conditioning_zero=bool(rk.get("c_gen_conditioning_zero", False)),
            c_scale=float(rk.get("c_scale", 0.0)),
            neural_rendering_resolution=int(neural_rendering_resolution),
            render=render,
            avg_camera_radius=float(rk.get("avg_camera_radius", 2.7)),
            avg_camera_pivot=tuple(float(v) for v in rk.get("avg_camera_pivot", (0, 0, 0.2))),
        )

    def to_eg3d_kwargs(self) -> tuple[dict, int]:
        """The inverse of `from_eg3d_kwargs`: (`TriPlaneGenerator` init kwargs, `neural_rendering_resolution`).

        The kwargs are the plain-dict form `train.py --cfg=ffhq --gen_pose_cond=True` builds, including
        the rendering options that only EG3D's GAN training reads (`gpc_reg_prob`, `density_reg`, ...)
        at their train.py defaults; for the presets they equal the fixture manifests' `init_kwargs`.
        `compute_dtype`, `remat` and the kernel choices have no EG3D counterpart and are not carried. The backbone's
        `num_fp16_res` is 0.
        """
        if (self.plane_resolution, self.plane_channels) != (256, 32):
            raise ValueError("EG3D's TriPlaneGenerator hard-codes 3x32-channel 256x256 planes; got "
                             f"plane_resolution={self.plane_resolution}, plane_channels={self.plane_channels}")
        r = self.render
        rendering_kwargs = {
            "image_resolution": self.img_resolution, "disparity_space_sampling": r.disparity_space_sampling,
            "clamp_mode": r.clamp_mode, "superresolution_module": f"training.superresolution.{self.sr_module}",
            "c_gen_conditioning_zero": self.c_gen_conditioning_zero, "gpc_reg_prob": 0.5, "c_scale": self.c_scale,
            "superresolution_noise_mode": self.superresolution_noise_mode, "density_reg": 0.25,
            "density_reg_p_dist": 0.004, "reg_type": "l1", "decoder_lr_mul": self.decoder_lr_mul,
            "sr_antialias": self.sr_antialias, "depth_resolution": r.depth_resolution,
            "depth_resolution_importance": r.depth_resolution_importance, "ray_start": r.ray_start,
            "ray_end": r.ray_end, "box_warp": r.box_warp, "avg_camera_radius": self.avg_camera_radius,
            "avg_camera_pivot": list(self.avg_camera_pivot),
        }
        if r.white_back:
            rendering_kwargs["white_back"] = True
        if r.density_noise:
            rendering_kwargs["density_noise"] = r.density_noise
        mapping_kwargs = {"num_layers": self.mapping_layers}
        if self.mapping_lr_multiplier != 0.01:  # MappingNetwork's default
            mapping_kwargs["lr_multiplier"] = self.mapping_lr_multiplier
        init_kwargs = {
            "z_dim": self.z_dim, "w_dim": self.w_dim, "mapping_kwargs": mapping_kwargs,
            "channel_base": self.channel_base, "channel_max": self.channel_max,
            "fused_modconv_default": "inference_only", "rendering_kwargs": rendering_kwargs,
            "num_fp16_res": 0, "sr_num_fp16_res": self.sr_num_fp16_res,
            "sr_kwargs": {"channel_base": self.channel_base, "channel_max": self.channel_max,
                          "fused_modconv_default": "inference_only"},
            "conv_clamp": self.backbone_conv_clamp, "c_dim": self.c_dim,
            "img_resolution": self.img_resolution, "img_channels": self.img_channels,
        }
        return init_kwargs, self.neural_rendering_resolution


_FFHQ_RENDER = RenderOptions(depth_resolution=48, depth_resolution_importance=48)

PRESETS: dict[str, GeneratorConfig] = {
    # The released ffhq512-128.pkl / ffhqrebalanced512-128.pkl architecture.
    "ffhq512-128": GeneratorConfig(),
    # The shared test fixtures (random weights, small backbones).
    "tiny128": GeneratorConfig(
        img_resolution=128, channel_base=1024, channel_max=32, sr_module="SuperresolutionHybrid2X",
        sr_num_fp16_res=0, neural_rendering_resolution=64,
        render=RenderOptions(depth_resolution=12, depth_resolution_importance=12)),
    "small512": GeneratorConfig(
        channel_base=2048, channel_max=32, sr_num_fp16_res=0, neural_rendering_resolution=64,
        render=_FFHQ_RENDER),
    # The architecture of the shipped head-world prior (pretrained/heads128; configs/pretrain_heads.py).
    "heads128": GeneratorConfig(
        img_resolution=128, channel_base=4096, channel_max=64, sr_module="SuperresolutionHybrid2X",
        sr_num_fp16_res=0, neural_rendering_resolution=32,
        render=RenderOptions(depth_resolution=12, depth_resolution_importance=12)),
}


def preset(name: str, **overrides: Any) -> GeneratorConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown generator preset {name!r}; known: {sorted(PRESETS)}")
    return PRESETS[name].replace(**overrides)
