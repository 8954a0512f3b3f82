"""Worlds with ground truth, rendered into the layout of `layout`: `synthetic` (a hidden person an EG3D generator
renders) and `heads` (procedural SDF heads traced by their own renderer), both written through `writer`.

Importing this package, `layout` or `writer` loads no JAX; `synthetic` and the renderers of `heads` do.
"""
