"""Conversion of EG3D PyTorch snapshot pickles to this project's JAX/Flax parameters."""
