"""PyTorch interop, without torch: the project's one home for PyTorch files, keys and layouts.

  convert_weights.unpickler        the restricted unpickler (allow-listed globals only, nothing executed)
  convert_weights.snapshot_reader  EG3D snapshot pickles -> module records and state dicts
  convert_weights.torch_zip        `torch.save` zip files: state dicts written and read, training checkpoints read
  convert_weights.eg3d_keys        EG3D state-dict keys and layouts <-> the Flax variables of `eg3d_flax`
  convert_weights.encoder_weights  the official HFA-GP encoders' state dicts -> the Flax params of `encoders`
  convert_weights.convert          an EG3D snapshot -> a generator directory (`python -m convert_weights`)
  convert_weights.export           a generator directory -> an EG3D state dict (`python -m convert_weights.export`)
  convert_weights.lpips            the torch-side LPIPS converter (run once where torch is installed)
"""
