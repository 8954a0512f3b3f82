"""An official HFA-GP training checkpoint (bbaaii/HFA-GP) -> a workdir this library evaluates and renders.

    python -m hfagp.from_official CHECKPOINT.pt WORKDIR --generator GEN_DIR [--data FOLDER] [--step N]

GEN_DIR is the converted generator the official run fine-tuned (`python -m convert_weights
ffhqrebalanced512-128.pkl GEN_DIR`): it gives the architecture and the buffers; the tuned weights come from
the checkpoint. Afterwards `hfagp.inference.load_trained(WORKDIR)`, `python -m hfagp.eval WORKDIR` and
`python -m hfagp.render ... WORKDIR` work as on a run trained here. The workdir holds no optimizer state, so
`train.py` cannot resume it.

Checkpoints (`torch.save` of a dict, written by `trainer_*.Trainer.save` as `<i>.pt` after update i; read with
`convert_weights.torch_zip.read_torch_zip_checkpoint`, a restricted unpickler that never executes pickled code):

  RGB    trainer_rgb    {'gen': HeadNeRF_final, 'g_optim', 'args'}
  3DMM   trainer_3dmm   {'gen': HeadNeRF_3DMM, 'w_optim', 'args'}
  audio  trainer_audio  {'gen': HeadNeRF_Audio, 'AudNet', 'AudAttNet', 'w_optim', 'optimizer_Aud',
                         'optimizer_AudAtt', 'args'}

'gen' holds the encoder (`encoder.*` RGB, `weights_3dmm.*` 3DMM and the audio head), the basis `bases`
[k, 14*512] and offset `delta` [14*512] (here `prior/basis`, `prior/offset`; orthogonality 'qr' is the
official QR), and the tuned EG3D `generator.*` (mapped by `convert_weights.eg3d_keys`; its buffers must equal the
base generator's, which also checks that GEN_DIR is the generator the run started from). Encoder weights:
`convert_weights.encoder_weights`. Optimizer states are not read.

Config: `configs/<kind>.py:official` with what the checkpoint's `args` say: k (`latent_dim_shape`, checked
against `bases`), the schedule (`iter`, `tune_iter`, `nosmo_iters` -> `schedule.audio_smoothing_start`), the
learning rate, the batch size and the loss resolution (`size`). The workdir's checkpoint step is i + 1 (updates
applied), so an audio avatar renders with the attention smoothing iff i >= `nosmo_iters`, as the official
`Trainer.sample` does.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np

from convert_weights.encoder_weights import (OfficialWeightsError, audio_encoder_params, expression_encoder_params,
                                             rgb_encoder_params, rgb_input_size)
from convert_weights.torch_zip import TorchNamespace, TorchZipError, read_torch_zip_checkpoint
from convert_weights.unpickler import SnapshotError
from hfagp import model as model_lib
from hfagp import workdir as workdir_lib
from hfagp_common import atomic, cli

NAME = "hfagp.from_official"
GENERATOR_PREFIX = "generator."


class OfficialCheckpointError(cli.UserError, ValueError):
    """The file is not an official HFA-GP training checkpoint this converter understands."""


def checkpoint_kind(ckpt: Mapping[str, Any], source: str = "checkpoint") -> str:
    """'rgb', 'expression' or 'audio': which official trainer wrote `ckpt`."""
    gen = ckpt.get("gen")
    if not isinstance(gen, Mapping):
        raise OfficialCheckpointError(f"{source}: no 'gen' state dict (keys {sorted(ckpt)[:8]}); not an official "
                                      f"HFA-GP training checkpoint")
    if "AudNet" in ckpt:
        return "audio"
    if any(k.startswith("encoder.") for k in gen):
        return "rgb"
    if any(k.startswith("weights_3dmm.") for k in gen):
        return "expression"
    raise OfficialCheckpointError(f"{source}: 'gen' has neither encoder.* nor weights_3dmm.* entries")


def _args(ckpt: Mapping[str, Any]) -> dict:
    args = ckpt.get("args")
    return dict(args.values) if isinstance(args, TorchNamespace) else {}


def iteration_of(path: Path) -> Optional[int]:
    """The update index i of an official `<i>.pt` (e.g. 000499.pt -> 499), or None."""
    match = re.fullmatch(r"(\d+)", path.stem)
    return int(match.group(1)) if match else None


def official_params(ckpt: Mapping[str, Any], kind: str, source: str = "checkpoint") -> tuple[dict, dict]:
    """(model params {'encoder', 'prior'}, the `generator.*` state dict) of an official checkpoint."""
    gen = {k: np.asarray(v) for k, v in ckpt["gen"].items()}
    prefix = {"rgb": "encoder.", "expression": "weights_3dmm.", "audio": "weights_3dmm."}[kind]
    unknown = sorted(k for k in gen if not (k.startswith(prefix) or k.startswith(GENERATOR_PREFIX)
                                            or k in ("bases", "delta")))
    if unknown:
        raise OfficialCheckpointError(f"{source}: unsupported entries in 'gen' (a two-person or out_pose run?): "
                                      f"{unknown[:6]}")
    for key in ("bases", "delta"):
        if key not in gen:
            raise OfficialCheckpointError(f"{source}: 'gen' has no {key!r}")
    basis, offset = gen["bases"].astype(np.float32), gen["delta"].astype(np.float32)
    if basis.ndim != 2 or offset.shape != (basis.shape[1],):
        raise OfficialCheckpointError(f"{source}: bases {basis.shape} and delta {offset.shape} do not form a prior")
    try:
        if kind == "rgb":
            encoder = rgb_encoder_params(gen, prefix)
        elif kind == "expression":
            encoder = expression_encoder_params(gen, prefix)
        else:
            encoder = audio_encoder_params(gen, ckpt["AudNet"], ckpt.get("AudAttNet"), head_prefix=prefix)
    except OfficialWeightsError as e:
        raise OfficialCheckpointError(f"{source}: {e}") from None
    generator = {k[len(GENERATOR_PREFIX):]: v for k, v in gen.items() if k.startswith(GENERATOR_PREFIX)}
    return {"encoder": encoder, "prior": {"basis": basis, "offset": offset}}, generator


def official_config(kind: str, args: Mapping[str, Any], model_params: Mapping, generator_dir: Path,
                    data_folder: str = "", data_format: str = ""):
    """The `configs/<kind>.py:official` config with what the official run's `args` and weights say."""
    from configs.common import make_config

    cfg = make_config(kind, "official")
    k = int(model_params["prior"]["basis"].shape[0])
    if "latent_dim_shape" in args and int(args["latent_dim_shape"]) != k:
        raise OfficialCheckpointError(f"args.latent_dim_shape={args['latent_dim_shape']} but bases has {k} rows")
    with cfg.unlocked():
        cfg.generator.path = str(Path(generator_dir).absolute())
        cfg.model.k = k
        encoder = model_params["encoder"]
        if kind == "rgb":
            cfg.model.encoder_kwargs.input_size = rgb_input_size(encoder)
        if kind == "expression":
            cfg.model.encoder_kwargs.in_dim = int(encoder["fc"]["fc_0"]["kernel"].shape[0])
        cfg.schedule.total_steps = int(args.get("iter", cfg.schedule.total_steps))
        cfg.schedule.generator_tuning_start = int(args.get("tune_iter", cfg.schedule.generator_tuning_start))
        if kind == "audio":
            cfg.schedule.audio_smoothing_start = int(args.get("nosmo_iters", cfg.schedule.audio_smoothing_start))
            if "attention" not in encoder:
                cfg.schedule.audio_smoothing_start = -1
        cfg.optim.learning_rate = float(args.get("lr", cfg.optim.learning_rate))
        cfg.optim.batch_size = int(args.get("batch_size", cfg.optim.batch_size))
        cfg.loss.resolution = int(args.get("size", cfg.loss.resolution))
        cfg.data.folder = str(data_folder)
        if data_format:
            cfg.data.format = data_format
    return cfg


def convert_official(checkpoint, workdir, generator_dir, *, data_folder: str = "", data_format: str = "",
                     iteration: Optional[int] = None, overwrite: bool = False) -> dict:
    """Writes WORKDIR (config.json + checkpoints/<i+1>/) from an official checkpoint; returns a summary.

    iteration: the update index i the checkpoint was saved after (default: from its file name `<i>.pt`).
    """
    import jax
    import orbax.checkpoint as ocp

    import eg3d_flax
    from convert_weights import eg3d_keys

    checkpoint, workdir = Path(checkpoint), Path(workdir)
    source = str(checkpoint)
    # The options first, then the checkpoint: a wrong path is named before the checkpoint is read.
    model_lib.check_generator_dir(generator_dir)
    if workdir.exists() and not workdir.is_dir():
        raise OfficialCheckpointError(f"{workdir} exists and is not a directory")
    if iteration is None:
        iteration = iteration_of(checkpoint)
        if iteration is None:
            raise OfficialCheckpointError(f"{source}: cannot tell the iteration from the file name (the official "
                                          f"trainers save <i>.pt); pass --iteration")
    ckpt = read_torch_zip_checkpoint(checkpoint)
    kind = checkpoint_kind(ckpt, source)
    model_params, generator_state = official_params(ckpt, kind, source)
    cfg = official_config(kind, _args(ckpt), model_params, Path(generator_dir), data_folder, data_format)

    base = eg3d_flax.load_generator(generator_dir)
    try:
        variables, skipped = eg3d_keys.state_dict_to_variables(generator_state, base.variables)
    except eg3d_keys.KeyMappingError as e:
        raise OfficialCheckpointError(f"{source}: its generator does not fit {generator_dir}: {e}") from None
    equal = lambda a, b: bool(np.array_equal(np.asarray(a, np.float32), np.asarray(b, np.float32)))
    same = jax.tree_util.tree_map(equal, variables["buffers"], base.variables["buffers"])
    if not all(jax.tree_util.tree_leaves(same)):
        raise OfficialCheckpointError(f"{source}: its generator's buffers (noise maps, w_avg) differ from those of "
                                      f"{generator_dir}; pass the generator the official run fine-tuned")
    step = iteration + 1
    params = {"model": model_params,
              "generator": jax.tree_util.tree_map(lambda x: np.asarray(x, np.float32), variables["params"])}
    with atomic.atomic_directory(workdir, overwrite=overwrite,
                                 replaceable=lambda p: (p / workdir_lib.CONFIG_FILE).is_file()) as tmp:
        (tmp / workdir_lib.CONFIG_FILE).write_text(cfg.to_json_best_effort(indent=2) + "\n")
        manager = ocp.CheckpointManager(workdir_lib.checkpoint_dir(tmp), item_names=workdir_lib.CHECKPOINT_ITEMS,
                                        options=ocp.CheckpointManagerOptions(create=True))
        manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave({"step": np.asarray(step, np.int32), "params": params}),
            data=ocp.args.JsonSave({"iterator": None, "source": str(checkpoint.absolute())})))
        manager.wait_until_finished()
        manager.close()
    return {"workdir": str(workdir.absolute()), "kind": kind, "k": int(cfg.model.k), "step": step,
            "audio_smoothing": model_lib.ModelSpec.from_config(cfg).smoothing_after(step),
            "skipped_generator_keys": skipped}


def build_parser() -> cli.ArgumentParser:
    p = cli.ArgumentParser(NAME, description="Turn an official HFA-GP training checkpoint (<i>.pt) into a workdir "
                                             "that hfagp.eval and hfagp.render read. Needs no PyTorch; nothing in "
                                             "the checkpoint is executed.")
    p.add_argument("checkpoint", type=cli.path, help="the official trainer's <i>.pt (RGB, 3DMM or audio)")
    p.add_argument("workdir", type=cli.path, help="workdir to create")
    p.add_argument("--generator", required=True, type=cli.path,
                   help=f"the converted generator the run fine-tuned (python -m convert_weights "
                        f"{model_lib.OFFICIAL_CHECKPOINT} DIR)")
    p.add_argument("--data", type=cli.optional_path, default="", help="the run's dataset folder, for hfagp.eval (optional)")
    p.add_argument("--data-format", default="", choices=("", "eg3d", "nerface", "adnerf"),
                   help="its layout (default: the config's)")
    p.add_argument("--iteration", type=cli.step, default=None,
                   help="the update index the checkpoint was saved after (default: from the file name <i>.pt)")
    p.add_argument("--overwrite", action="store_true", help="replace WORKDIR if it is a workdir")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)

    def body():
        summary = convert_official(args.checkpoint, args.workdir, args.generator, data_folder=args.data,
                                   data_format=args.data_format, iteration=args.iteration, overwrite=args.overwrite)
        print(json.dumps(summary, indent=2))

    return cli.run(NAME, body, expected=(*cli.EXPECTED_ERRORS, SnapshotError, TorchZipError))


if __name__ == "__main__":
    cli.exit(main())


__all__ = ["OfficialCheckpointError", "checkpoint_kind", "convert_official", "iteration_of", "main",
           "official_config", "official_params"]
