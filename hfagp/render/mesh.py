"""Mesh export of an avatar: density on a cube grid from the tri-planes, marching cubes, .ply/.obj.

As EG3D's shape extraction: the raw density sigma (before the renderer's softplus) is sampled on a
regular grid filling the tri-plane box (side `box_warp`, centred at the world origin), the grid's
border is set to a very low density so every surface closes, and the iso-surface at `threshold`
(EG3D: 10) is extracted with marching cubes. Vertices are in world units (EG3D world: y up, the face
looks along +z); faces wind counter-clockwise seen from outside (normals point out of the dense
region).

    volume, origin, voxel = sample_density(generator, ws[:1], resolution=128)
    vertices, faces = extract_mesh(pad_border(volume, border_width(128)), 10.0, origin, voxel)
    write_ply("avatar.ply", vertices, faces)
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

PathLike = Union[str, Path]

EG3D_THRESHOLD = 10.0
BORDER_VALUE = -1000.0


def cube_grid(resolution: int, cube_length: float, center=(0.0, 0.0, 0.0)) -> tuple[np.ndarray, np.ndarray, float]:
    """Points of a resolution^3 grid spanning a cube (corners included).

    Returns (points [resolution^3, 3] float32, origin [3] (the min corner), voxel_size). Point
    ``(i * R + j) * R + k`` is ``origin + voxel_size * (i, j, k)``, so a volume reshaped to [R, R, R]
    is indexed [x, y, z].
    """
    if resolution < 2:
        raise ValueError(f"grid resolution must be at least 2, got {resolution}")
    voxel_size = cube_length / (resolution - 1)
    origin = np.asarray(center, np.float64) - cube_length / 2
    axis = np.arange(resolution, dtype=np.float64) * voxel_size
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3) + origin
    return grid.astype(np.float32), origin, float(voxel_size)


@functools.lru_cache(maxsize=8)
def _density_fns(config):
    """Jitted (planes of ws, sigma at points of planes) for one generator config."""
    from eg3d_flax.generator import TriPlaneGenerator

    module = TriPlaneGenerator(config)
    planes = jax.jit(lambda variables, ws: module.apply(variables, ws, method=module.planes))

    @jax.jit
    def sigma(variables, planes_, points):
        return module.apply(variables, planes_, points, method=module.decode_points)["sigma"][..., 0]

    return planes, sigma


def sample_density(generator, ws, resolution: int = 128, cube_length: Optional[float] = None,
                   chunk: int = 1 << 18, progress: bool = False) -> tuple[np.ndarray, np.ndarray, float]:
    """Raw density of one avatar on a cube grid.

    generator: an `eg3d_flax.Generator`; ws: W+ [1, num_ws, w_dim] (or [num_ws, w_dim]).
    cube_length: side of the sampled cube, centred at the origin (default: the tri-plane box,
    `box_warp`). The tri-planes are computed once; the points are decoded in fixed-size chunks
    (one compilation; the last chunk is padded).
    Returns (sigma [R, R, R] float32 indexed [x, y, z], origin [3], voxel_size).
    """
    from tqdm import tqdm

    ws = jnp.asarray(ws, jnp.float32)
    if ws.ndim == 2:
        ws = ws[None]
    if ws.ndim != 3 or ws.shape[0] != 1:
        raise ValueError(f"sample_density takes the latents of one avatar, [1, num_ws, w_dim]; got {ws.shape}")
    if cube_length is None:
        cube_length = float(generator.config.render.box_warp)
    points, origin, voxel_size = cube_grid(resolution, cube_length)
    planes_fn, sigma_fn = _density_fns(generator.config)
    planes = planes_fn(generator.variables, ws)
    chunk = min(chunk, len(points))
    out = np.empty(len(points), np.float32)
    for start in tqdm(range(0, len(points), chunk), desc="density", unit="chunk", disable=not progress):
        part = points[start:start + chunk]
        n = len(part)
        if n < chunk:
            part = np.concatenate([part, np.zeros((chunk - n, 3), np.float32)])
        out[start:start + n] = np.asarray(sigma_fn(generator.variables, planes, part[None]))[0, :n]
    return out.reshape(resolution, resolution, resolution), origin, voxel_size


def border_width(resolution: int) -> int:
    """EG3D's trimmed border: 30 voxels at 256^3 (the box corners hold no face), at least 1."""
    return max(1, int(30 * resolution / 256))


def pad_border(volume: np.ndarray, width: int, value: float = BORDER_VALUE) -> np.ndarray:
    """A copy of `volume` [X, Y, Z] with `width` voxels at every face set to `value` (closes surfaces)."""
    if width < 1:
        raise ValueError(f"border width must be at least 1 (else surfaces may stay open), got {width}")
    out = np.array(volume, np.float32, copy=True)
    out[:width], out[-width:] = value, value
    out[:, :width], out[:, -width:] = value, value
    out[:, :, :width], out[:, :, -width:] = value, value
    return out


def auto_threshold(volume: np.ndarray, percentile: float = 95.0, width: int = 0) -> float:
    """The `percentile` of the densities inside the border: about (100 - percentile)% of the interior
    grid ends up inside the surface. For untrained or unusual generators, whose densities do not reach
    EG3D's threshold of 10."""
    if not 0.0 < percentile < 100.0:
        raise ValueError(f"percentile must be in (0, 100), got {percentile}")
    inner = volume[width:volume.shape[0] - width, width:volume.shape[1] - width, width:volume.shape[2] - width]
    return float(np.percentile(inner, percentile))


def extract_mesh(volume: np.ndarray, threshold: float, origin=(0.0, 0.0, 0.0),
                 voxel_size: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Iso-surface {volume = threshold} of a density [X, Y, Z] (dense = inside).

    Returns (vertices [V, 3] float32 in world units = origin + voxel_size * (x, y, z) index,
    faces [F, 3] int32, counter-clockwise seen from outside). Raises ValueError when the density
    never crosses `threshold` (empty mesh), naming the density range.
    """
    try:
        from skimage import measure
    except ImportError as e:
        raise RuntimeError("mesh extraction needs scikit-image (pip install scikit-image)") from e

    volume = np.asarray(volume, np.float32)
    lo, hi = float(volume.min()), float(volume.max())
    if not lo < threshold < hi:
        raise ValueError(f"density threshold {threshold:g} is outside the density range [{lo:g}, {hi:g}]: "
                         "the mesh would be empty; pick a threshold inside it (or 'auto')")
    verts, faces, _, _ = measure.marching_cubes(volume, level=threshold, spacing=(voxel_size,) * 3,
                                                gradient_direction="descent", method="lewiner")
    # skimage winds faces clockwise seen from outside the object for 'descent'; reverse them.
    faces = faces[:, ::-1]
    verts = verts + np.asarray(origin, np.float64)
    return verts.astype(np.float32), np.ascontiguousarray(faces, np.int32)


def avatar_mesh(generator, ws, resolution: int = 128, threshold: Union[float, str] = EG3D_THRESHOLD,
                percentile: float = 95.0, border: Optional[int] = None, chunk: int = 1 << 18,
                progress: bool = False) -> tuple[np.ndarray, np.ndarray, float]:
    """The mesh of one avatar's W+ latents: (vertices [V,3], faces [F,3], the threshold used).

    threshold: a density, or 'auto' for `auto_threshold(percentile)`. border: voxels trimmed at each
    face of the cube (default EG3D's `border_width(resolution)`).
    """
    volume, origin, voxel_size = sample_density(generator, ws, resolution, chunk=chunk, progress=progress)
    width = border_width(resolution) if border is None else int(border)
    if 2 * width >= resolution:
        raise ValueError(f"border {width} leaves nothing of a {resolution}^3 grid")
    if threshold == "auto":
        threshold = auto_threshold(volume, percentile, width)
    volume = pad_border(volume, width)
    vertices, faces = extract_mesh(volume, float(threshold), origin, voxel_size)
    return vertices, faces, float(threshold)


def write_ply(path: PathLike, vertices: np.ndarray, faces: np.ndarray) -> Path:
    """Binary little-endian PLY: float32 vertex x, y, z and uchar-counted int32 face indices."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    vertices = np.asarray(vertices, "<f4").reshape(-1, 3)
    faces = np.asarray(faces, "<i4").reshape(-1, 3)
    header = ("ply\nformat binary_little_endian 1.0\ncomment hfagp-jax avatar mesh (world units)\n"
              f"element vertex {len(vertices)}\nproperty float x\nproperty float y\nproperty float z\n"
              f"element face {len(faces)}\nproperty list uchar int vertex_indices\nend_header\n")
    face_records = np.empty(len(faces), dtype=[("n", "u1"), ("idx", "<i4", (3,))])
    face_records["n"] = 3
    face_records["idx"] = faces
    with open(path, "wb") as f:
        f.write(header.encode("ascii"))
        f.write(vertices.tobytes())
        f.write(face_records.tobytes())
    return path


def read_ply(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read back a triangle mesh written by `write_ply` -> (vertices [V,3] float32, faces [F,3] int32)."""
    data = Path(path).read_bytes()
    end = data.find(b"end_header\n")
    if not data.startswith(b"ply\n") or end < 0:
        raise ValueError(f"{path} is not a PLY file")
    header = data[:end].decode("ascii").splitlines()
    if "format binary_little_endian 1.0" not in header:
        raise ValueError(f"{path}: only binary little-endian PLY files written by write_ply are read")
    counts = {line.split()[1]: int(line.split()[2]) for line in header if line.startswith("element")}
    body = data[end + len(b"end_header\n"):]
    nv, nf = counts["vertex"], counts["face"]
    vertices = np.frombuffer(body, "<f4", count=3 * nv).reshape(nv, 3)
    records = np.frombuffer(body, dtype=[("n", "u1"), ("idx", "<i4", (3,))], count=nf, offset=12 * nv)
    if nf and not np.all(records["n"] == 3):
        raise ValueError(f"{path}: only triangle faces are supported")
    return vertices.astype(np.float32), records["idx"].astype(np.int32)


def write_obj(path: PathLike, vertices: np.ndarray, faces: np.ndarray) -> Path:
    """Wavefront OBJ (text; 1-based face indices)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        f.write("# hfagp-jax avatar mesh (world units)\n")
        np.savetxt(f, np.asarray(vertices, np.float32), fmt="v %.6f %.6f %.6f")
        np.savetxt(f, np.asarray(faces, np.int64) + 1, fmt="f %d %d %d")
    return path


def read_obj(path: PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a triangle OBJ (v / f lines only) -> (vertices [V,3] float32, faces [F,3] int32, 0-based)."""
    vertices, faces = [], []
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if parts and parts[0] == "v":
            vertices.append([float(v) for v in parts[1:4]])
        elif parts and parts[0] == "f":
            faces.append([int(p.split("/")[0]) - 1 for p in parts[1:4]])
    return np.asarray(vertices, np.float32).reshape(-1, 3), np.asarray(faces, np.int32).reshape(-1, 3)


def write_mesh(path: PathLike, vertices: np.ndarray, faces: np.ndarray) -> Path:
    """.ply or .obj by the file extension."""
    suffix = Path(path).suffix.lower()
    if suffix == ".ply":
        return write_ply(path, vertices, faces)
    if suffix == ".obj":
        return write_obj(path, vertices, faces)
    raise ValueError(f"mesh file {path}: the extension must be .ply or .obj")


def edge_counts(faces: np.ndarray) -> np.ndarray:
    """For each undirected edge of a triangle mesh, the number of faces that share it."""
    faces = np.asarray(faces, np.int64)
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    edges.sort(axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    return counts


def closed_edge_fraction(faces: np.ndarray) -> float:
    """Fraction of edges shared by exactly two faces (1.0 for a closed 2-manifold)."""
    counts = edge_counts(faces)
    return float(np.mean(counts == 2)) if len(counts) else 0.0


def euler_characteristic(vertices: np.ndarray, faces: np.ndarray) -> int:
    """V - E + F over the vertices that faces use (2 per closed genus-0 component)."""
    used = len(np.unique(np.asarray(faces).reshape(-1)))
    return int(used - len(edge_counts(faces)) + len(faces))


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    """Enclosed volume (positive when faces wind counter-clockwise seen from outside)."""
    v = np.asarray(vertices, np.float64)[np.asarray(faces)]
    return float(np.einsum("fi,fi->f", v[:, 0], np.cross(v[:, 1], v[:, 2])).sum() / 6.0)


__all__ = ["EG3D_THRESHOLD", "auto_threshold", "avatar_mesh", "border_width", "closed_edge_fraction", "cube_grid",
           "edge_counts", "euler_characteristic", "extract_mesh", "pad_border", "read_obj", "read_ply",
           "sample_density", "signed_volume", "write_mesh", "write_obj", "write_ply"]
