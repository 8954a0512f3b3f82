"""The head as a signed distance field, and its materials (JAX, elementwise over separate x/y/z arrays).

`derive` turns one image's identity [IDENTITY_DIM], expression [10] and pose [6] vectors into a dict of
scalars (positions, radii, angles, colours); it works with numpy (``xp=np``, e.g. for ground-truth landmark
positions such as `nose_tip`) and with jax.numpy (inside the renderer, once per image). `scene_distance`
and `surface_colour` then take world-space points as three arrays of any one shape.

Model (head-local units, see `avatar_data.worlds.heads.params`): a cranium ellipsoid and a lower-face ellipsoid with a
chin, smoothly joined; cheeks; a nose (a round cone with nostril wings and holes); ears with a hollow; eye
sockets with eyeballs (sclera, iris, pupil, turned by the gaze) and eyelids (sphere caps cut by two tilted
planes through the eye centre, the upper one lowered by a blink); brows (two capsules on the forehead); lips
bent by smile/pucker around a mouth cavity with teeth and a tongue. The jaw opens by turning the mandible
(chin, lower lip, lower teeth, tongue) about a hinge behind the mouth; the lower face morphs from its rest
shape above the mouth to the turned one below it, and the cavity (with a dark throat behind it) grows with
the opening. A neck joins the posed head to shoulders that only translate. The hair is a clipped, optionally
bumped and tapered ellipsoid shell with an optional bun. The scene is intersected with EG3D's box (|x|, |y|,
|z| <= `SCENE_BOX`) and a ball of radius `SCENE_RADIUS` about the origin, so every surface lies where EG3D can
represent it.

Distances are bounds rather than exact (ellipsoids, smooth unions, warps), with a Lipschitz constant a
little above one where the hair is bumped: the tracer steps by a relaxed fraction of them.
"""

from __future__ import annotations

import math

import numpy as np

from avatar_data.worlds.heads import params as P

SCENE_BOX = 0.49
SCENE_RADIUS = 0.6
CURL_FREQUENCY = 22.0  # bumps per head-local unit of the curly hair
# (y, z) of the jaw's hinge axis (parallel to x), head-local: a little above and well behind the mouth, so the
# opening jaw moves the lower lip mostly down (a real jaw also slides forward as it turns, which this mimics).
JAW_HINGE = (-0.076, -0.04)

# Material ids returned by `surface_colour` (for tests and debugging).
SKIN, SHIRT, EYE, TEETH, BROW, HAIR, MOUTH = range(7)

# Part labels (`part_label`; the value is the index): what a pixel's centre ray hits.
PART_NAMES = ("background", "skin", "eyes", "eyelids", "brows", "lips", "mouth_interior", "nose", "hair", "ears",
              "neck", "shirt")
PART = {name: i for i, name in enumerate(PART_NAMES)}
# How far (world units) a skin point may lie from a part's own surface and still belong to it: the middle of the
# colour blends for lips, lids and the mouth cavity (`surface_colour`), about a third of the smooth-union
# widths for the nose, ears and neck.
_PART_TOLERANCE = {"lips": 0.002, "lid": 0.0015, "cavity": 0.0015, "nostril": 0.0015, "nose": 0.003, "ear": 0.003,
                   "neck": 0.008}
# Face points whose image positions the worlds store (`face_points`).
FACE_POINT_NAMES = ("mouth", "eye_l", "eye_r")

_SCLERA = (0.80, 0.78, 0.74)
_PUPIL = (0.015, 0.012, 0.012)
_TEETH = (0.80, 0.77, 0.68)
_MOUTH = (0.10, 0.015, 0.02)
_TONGUE = (0.45, 0.10, 0.10)
_LASH = (0.03, 0.02, 0.02)


def _lin(c, xp):
    """sRGB [0, 1] -> linear light (gamma 2.2)."""
    return xp.asarray(c) ** 2.2


def derive(identity, expression, pose, xp=np) -> dict:
    """Per-image scalars of the model from identity [IDENTITY_DIM], expression [10] and pose [6] vectors.

    Returns a flat dict of scalars and tuples of scalars (xp arrays of shape []): the head rotation ``rot``
    (R row-major, 9 scalars), the ``translation``, every landmark centre and radius in head-local
    coordinates, and linear-light colours.
    """
    ident = {n: identity[s] for n, s in P.IDENTITY_SLICES.items()}
    s = {n: ident[n][0] for n in P.SHAPE_NAMES}
    e = {n: expression[i] for i, n in enumerate(P.EXPRESSION_NAMES)}
    d = {}

    yaw, pitch, roll = pose[0], pose[1], pose[2]
    cy, sy, cp, sp, cr, sr = xp.cos(yaw), xp.sin(yaw), xp.cos(pitch), xp.sin(pitch), xp.cos(roll), xp.sin(roll)
    # R = Ry Rx Rz (params.rotation_matrix), stored row-major.
    r00, r01, r02 = cy * cr + sy * sp * sr, -cy * sr + sy * sp * cr, sy * cp
    r10, r11, r12 = cp * sr, cp * cr, -sp
    r20, r21, r22 = -sy * cr + cy * sp * sr, sy * sr + cy * sp * cr, cy * cp
    d["rot"] = (r00, r01, r02, r10, r11, r12, r20, r21, r22)
    d["translation"] = (pose[3], pose[4], pose[5])

    # Skull.
    d["cranium_c"] = P.CRANIUM_CENTRE
    d["cranium_r"] = (P.CRANIUM_RADII[0] * s["head_width"], P.CRANIUM_RADII[1] * s["head_height"],
                      P.CRANIUM_RADII[2] * s["head_depth"])
    d["lowface_c"] = (0.0, -0.072, 0.018)
    d["lowface_r"] = (0.104 * s["jaw_width"], 0.118 * s["chin_length"], 0.116)
    d["chin_c"] = (0.0, -0.072 - 0.098 * s["chin_length"], 0.082)
    d["chin_r"] = 0.034 * s["jaw_width"]

    def skull_front(x, y):
        """z of the cranium's front surface at head-local (x, y)."""
        (c0, c1, c2), (q0, q1, q2) = d["cranium_c"], d["cranium_r"]
        u = 1.0 - ((x - c0) / q0) ** 2 - ((y - c1) / q1) ** 2
        return c2 + q2 * xp.sqrt(xp.maximum(u, 0.05))

    smile, pucker = e["smile"], e["pucker"]
    d["cheek_c"] = (0.057, -0.036 + 0.008 * xp.maximum(smile, 0.0), 0.078 + 0.006 * e["cheek_puff"])
    d["cheek_r"] = 0.033 * s["cheek_size"] + 0.024 * e["cheek_puff"]

    # Nose: a round cone from the bridge to the tip, nostril wings and holes.
    nose_len, nose_w = s["nose_length"], s["nose_width"]
    d["nose_a"] = (0.0, 0.028, skull_front(0.0, 0.028) - 0.006)
    d["nose_b"] = (0.0, -0.034 - 0.01 * nose_len, 0.158 + 0.017 * nose_len)
    d["nose_r"] = (0.0085, 0.0155 * nose_w)
    d["wing_c"] = (0.0165 * nose_w, -0.047 - 0.006 * nose_len, 0.153 + 0.006 * nose_len)
    d["wing_r"] = 0.0115 * nose_w
    d["nostril_c"] = (0.0085 * nose_w, d["wing_c"][1] - 0.008, d["wing_c"][2] + 0.006)
    d["nostril_r"] = 0.0042 * nose_w

    # Ears.
    ear = s["ear_size"]
    d["ear_c"] = (d["cranium_r"][0] - 0.004, 0.004, -0.028)
    d["ear_r"] = (0.0135 * ear, 0.037 * ear, 0.023 * ear)
    d["ear_in_c"] = (d["ear_c"][0] + 0.0085 * ear, 0.004, -0.026)
    d["ear_in_r"] = (0.0075 * ear, 0.026 * ear, 0.015 * ear)

    # Eyes, lids and brows (the +x side; the -x side mirrors x).
    eye_r = 0.026 * s["eye_size"]
    ex = 0.058 * s["eye_spacing"]
    d["eye_c"] = (ex, 0.018, skull_front(ex, 0.018) - eye_r + 0.0065)
    d["eye_r"] = eye_r
    d["lid_r"] = eye_r + 0.0024
    d["socket_r"] = eye_r + 0.0012
    gx, gy = e["gaze_x"] * P.GAZE_ANGLES[0], e["gaze_y"] * P.GAZE_ANGLES[1]
    d["gaze"] = (xp.sin(gx) * xp.cos(gy), xp.sin(gy), xp.cos(gx) * xp.cos(gy))
    upper_open = 0.42 + 0.55 * gy + 0.12 * e["brow_raise"] - 0.1 * xp.maximum(smile, 0.0) - 0.06 * e["brow_furrow"]
    closed = -0.56
    d["lid_upper_l"] = upper_open + (closed - upper_open) * e["blink_l"]
    d["lid_upper_r"] = upper_open + (closed - upper_open) * e["blink_r"]
    d["lid_lower"] = -0.52 + 0.12 * xp.maximum(smile, 0.0) + 0.25 * xp.minimum(gy, 0.0)
    raise_, furrow = e["brow_raise"], e["brow_furrow"]
    bx0, by0 = 0.021 - 0.006 * furrow, 0.054 + 0.013 * raise_ - 0.009 * furrow
    bx1, by1 = 0.055, 0.063 + 0.014 * raise_ - 0.002 * furrow
    bx2, by2 = 0.088, 0.056 + 0.01 * raise_ + 0.002 * furrow
    d["brow_a"] = (bx0, by0, skull_front(bx0, by0) + 0.001)
    d["brow_b"] = (bx1, by1, skull_front(bx1, by1) + 0.0005)
    d["brow_c"] = (bx2, by2, skull_front(bx2, by2) - 0.001)
    d["brow_r"] = 0.0048 * s["brow_thickness"]

    # Mouth. The mandible (lower face, chin, lower lip, lower teeth, tongue) turns about JAW_HINGE by
    # jaw_open * JAW_ANGLE; `drop` is how far that moves the top of the lower lip down.
    mouth_y = -0.096 - 0.006 * (s["chin_length"] - 1.0)
    d["mouth_y"] = mouth_y
    front = 0.133 + 0.014 * pucker
    theta = P.JAW_ANGLE * e["jaw_open"]
    d["jaw_cos"], d["jaw_sin"] = xp.cos(theta), xp.sin(theta)
    hy, hz = JAW_HINGE
    drop = (mouth_y - hy) * (1.0 - d["jaw_cos"]) + (front - hz) * d["jaw_sin"]
    d["bend"] = 12.0 * smile  # corners move up by bend * x^2
    half_w = 0.026 * s["mouth_width"] * (1.0 + 0.18 * xp.maximum(smile, 0.0)) * (1.0 - 0.38 * pucker)
    lip = s["lip_thickness"] * (1.0 + 0.35 * pucker)
    d["upper_lip_c"] = (0.0, mouth_y + 0.0068 * lip, front)
    d["upper_lip_r"] = (half_w * 1.04, 0.0068 * lip, 0.0125 + 0.004 * pucker)
    d["lower_lip_c"] = (0.0, mouth_y - 0.0078 * lip, front - 0.0025)
    d["lower_lip_r"] = (half_w, 0.0078 * lip, 0.0125 + 0.004 * pucker)
    top = mouth_y + 0.0022 + 0.28 * drop
    bottom = mouth_y - 1.15 * drop - 0.0022
    d["cavity_c"] = (0.0, 0.5 * (top + bottom), 0.126 + 0.004 * pucker)
    d["cavity_r"] = (half_w * (0.92 + 0.3 * e["jaw_open"] * (1.0 - pucker)), 0.5 * (top - bottom), 0.03)
    d["teeth_upper_c"] = (0.0, mouth_y + 0.0072, 0.112)
    d["teeth_lower_c"] = (0.0, mouth_y - 0.0105, 0.109)
    d["teeth_half"] = (0.0185 * s["mouth_width"], 0.0042, 0.007)
    d["tongue_c"] = (0.0, mouth_y - 0.021, 0.095)
    d["throat_c"] = (0.0, mouth_y - 0.5 * drop, 0.085)
    d["throat_r"] = (0.03, 0.02 + 0.5 * drop, 0.035)

    # Neck and shoulders (world frame, translated with the head).
    d["neck_top"] = (0.0, -0.125, -0.038)  # head-local, carried by the pose
    d["neck_base"] = (0.0, -0.36, -0.05)
    d["neck_r"] = 0.056 * s["neck_width"]
    d["torso_c"] = (0.0, -0.405, -0.055)
    d["torso_half"] = (0.17 * s["shoulder_width"], 0.035, 0.06)

    # Hair.
    for name in ("hair_centre", "hair_radii", "hair_bottom", "hair_face", "hair_taper", "texture_phase"):
        d[name] = tuple(ident[name][i] for i in range(ident[name].shape[0]))
    d["hair_curl"] = ident["hair_curl"][0]
    d["hair_bun"] = ident["hair_bun"][0]
    d["hair_strands"] = ident["hair_strands"][0]
    hc, hr = d["hair_centre"], d["hair_radii"]
    d["bun_c"] = (0.0, hc[1] + 0.8 * hr[1], hc[2] - 0.6 * hr[2])
    d["skin_texture"] = ident["skin_texture"][0]

    for name in ("skin_rgb", "lip_rgb", "iris_rgb", "hair_rgb", "shirt_rgb", "background_rgb"):
        d[name] = tuple(_lin(ident[name][i], xp) for i in range(3))
    return d


def _derive64(identity, expression, pose) -> dict:
    return derive(np.asarray(identity, np.float64), np.asarray(expression, np.float64),
                  np.asarray(pose, np.float64), np)


def nose_tip(identity: np.ndarray, expression: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """World position [3] float64 of the front of the nose tip (the tip sphere's +z pole, head-local)."""
    d = _derive64(identity, expression, pose)
    tip = np.array(d["nose_b"], np.float64) + np.array([0.0, 0.0, d["nose_r"][1]])
    return P.head_to_world(tip, pose)


def face_points(identity: np.ndarray, expression: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """World positions [3, 3] float64 of `FACE_POINT_NAMES`: the mouth centre (the lips' seam at the front of the
    closed mouth; the jaw opens below it) and the front poles of the left (+x) and right eyeballs (where the
    pupils are at rest gaze). Blinks and gaze leave them in place; the jaw, smile and pucker barely move them."""
    d = _derive64(identity, expression, pose)
    ex, ey, ez = d["eye_c"]
    front = d["upper_lip_c"][2] + d["upper_lip_r"][2]
    local = np.array([[0.0, d["mouth_y"], front], [ex, ey, ez + d["eye_r"]], [-ex, ey, ez + d["eye_r"]]],
                     np.float64)
    return P.head_to_world(local, pose)


# ----------------------------------------------------------------------------------------------------
# Distance primitives over separate coordinate arrays (all broadcast elementwise).


def _sqrt(v, xp):
    return xp.sqrt(xp.maximum(v, 1e-12))


def _length(x, y, z, xp):
    return _sqrt(x * x + y * y + z * z, xp)


def _sphere(x, y, z, c, r, xp):
    return _length(x - c[0], y - c[1], z - c[2], xp) - r


def _ellipsoid(x, y, z, c, r, xp):
    """Quilez's ellipsoid bound ``k0 (k0 - 1) / k1``."""
    px, py, pz = (x - c[0]) / r[0], (y - c[1]) / r[1], (z - c[2]) / r[2]
    k0 = _length(px, py, pz, xp)
    k1 = _length(px / r[0], py / r[1], pz / r[2], xp)
    return k0 * (k0 - 1.0) / k1


def _round_cone(x, y, z, a, b, r, xp):
    """Capsule from a to b with the radius going linearly from r[0] to r[1] along it (a bound)."""
    bax, bay, baz = b[0] - a[0], b[1] - a[1], b[2] - a[2]
    pax, pay, paz = x - a[0], y - a[1], z - a[2]
    h = xp.clip((pax * bax + pay * bay + paz * baz) / (bax * bax + bay * bay + baz * baz), 0.0, 1.0)
    return _length(pax - h * bax, pay - h * bay, paz - h * baz, xp) - (r[0] + (r[1] - r[0]) * h)


def _rounded_box(x, y, z, c, half, radius, xp):
    qx, qy, qz = (xp.abs(x - c[0]) - half[0], xp.abs(y - c[1]) - half[1], xp.abs(z - c[2]) - half[2])
    outside = _length(xp.maximum(qx, 0.0), xp.maximum(qy, 0.0), xp.maximum(qz, 0.0), xp)
    return outside + xp.minimum(xp.maximum(qx, xp.maximum(qy, qz)), 0.0) - radius


def _smin(a, b, k, xp):
    """Polynomial smooth minimum (blend width k)."""
    h = xp.maximum(k - xp.abs(a - b), 0.0) / k
    return xp.minimum(a, b) - 0.25 * k * h * h


def _smax(a, b, k, xp):
    """Polynomial smooth maximum (blend width k)."""
    h = xp.maximum(k - xp.abs(a - b), 0.0) / k
    return xp.maximum(a, b) + 0.25 * k * h * h


def psin(u, xp):
    """A smooth (C1) periodic wave of period 1 in [-1, 1], close to sin(2 pi u) and cheaper."""
    v = u - xp.floor(u) - 0.5
    return -16.0 * v * (0.5 - xp.abs(v))


# ----------------------------------------------------------------------------------------------------
# The scene.


def _head_local(x, y, z, d):
    """World points -> head-local (inverse pose): q = (R^T (p - pivot - t) + pivot) / HEAD_SCALE."""
    r = d["rot"]
    px, py, pz = P.HEAD_PIVOT
    t = d["translation"]
    ux, uy, uz = x - px - t[0], y - py - t[1], z - pz - t[2]
    k = 1.0 / P.HEAD_SCALE
    qx = (r[0] * ux + r[3] * uy + r[6] * uz + px) * k
    qy = (r[1] * ux + r[4] * uy + r[7] * uz + py) * k
    qz = (r[2] * ux + r[5] * uy + r[8] * uz + pz) * k
    return qx, qy, qz


def components(x, y, z, d, xp) -> dict:
    """Distances of the scene's parts at world points (arrays of one shape) -> dict of arrays.

    Keys: 'skin' (face, head, ears, neck, lips, lids; with the mouth cavity carved out), 'shirt', 'eye',
    'teeth' (with the tongue), 'mouth' (the dark back of the open mouth), 'brow', 'hair', plus helper fields
    for colouring and part labels: 'lid', 'tongue', 'lips', 'cavity', 'nostril', 'nose', 'ear' and 'neck' (the
    parts that the skin joins, each alone), 'q' (head-local coordinates), 'ax' (|q_x|),
    'side' (+1 on the +x side, -1 on the other), 'lid_cut' and 's_up' (the lid planes' signed distances).
    """
    t = d["translation"]
    wx, wy, wz = x - t[0], y - t[1], z - t[2]
    qx, qy, qz = _head_local(x, y, z, d)
    ax = xp.abs(qx)
    side = xp.where(qx >= 0.0, 1.0, -1.0)

    # Mandible coordinates: the rest pose of the point that the opened jaw carries to q.
    hy, hz = JAW_HINGE
    c, s_ = d["jaw_cos"], d["jaw_sin"]
    yj = hy + (qy - hy) * c + (qz - hz) * s_
    zj = hz - (qy - hy) * s_ + (qz - hz) * c
    # The lower face morphs from its rest shape above the mouth to the turned mandible below it, so the
    # cheeks stretch smoothly instead of tearing.
    mouth_y = d["mouth_y"]
    w = xp.clip((mouth_y + 0.006 - qy) / 0.06, 0.0, 1.0)
    w = w * w * (3.0 - 2.0 * w)
    lowface = (1.0 - w) * _ellipsoid(qx, qy, qz, d["lowface_c"], d["lowface_r"], xp) + \
        w * _ellipsoid(qx, yj, zj, d["lowface_c"], d["lowface_r"], xp)
    cranium = _ellipsoid(qx, qy, qz, d["cranium_c"], d["cranium_r"], xp)
    chin = _sphere(qx, yj, zj, d["chin_c"], d["chin_r"], xp)
    skin = _smin(_smin(cranium, lowface, 0.05, xp), chin, 0.03, xp)
    skin = _smin(skin, _sphere(ax, qy, qz, d["cheek_c"], d["cheek_r"], xp), 0.035, xp)

    nose = _round_cone(qx, qy, qz, d["nose_a"], d["nose_b"], d["nose_r"], xp)
    nose = _smin(nose, _sphere(ax, qy, qz, d["wing_c"], d["wing_r"], xp), 0.01, xp)
    skin = _smin(skin, nose, 0.012, xp)
    nostril = _sphere(ax, qy, qz, d["nostril_c"], d["nostril_r"], xp)
    skin = _smax(skin, -nostril, 0.003, xp)

    ear = _ellipsoid(ax, qy, qz, d["ear_c"], d["ear_r"], xp)
    ear = _smax(ear, -_ellipsoid(ax, qy, qz, d["ear_in_c"], d["ear_in_r"], xp), 0.004, xp)
    skin = _smin(skin, ear, 0.012, xp)
    skin = _smax(skin, -_sphere(ax, qy, qz, d["eye_c"], d["socket_r"], xp), 0.006, xp)

    # Lips and mouth cavity, in coordinates bent by the smile (corners up).
    bent = qy - d["bend"] * qx * qx
    bent_j = yj - d["bend"] * qx * qx
    lips = xp.minimum(_ellipsoid(qx, bent, qz, d["upper_lip_c"], d["upper_lip_r"], xp),
                      _ellipsoid(qx, bent_j, zj, d["lower_lip_c"], d["lower_lip_r"], xp))
    skin = _smin(skin, lips, 0.007, xp)
    cavity = _ellipsoid(qx, bent, qz, d["cavity_c"], d["cavity_r"], xp)
    skin = _smax(skin, -cavity, 0.003, xp)

    eye = _sphere(ax, qy, qz, d["eye_c"], d["eye_r"], xp)
    ec = d["eye_c"]
    ux, uy, uz = ax - ec[0], qy - ec[1], qz - ec[2]
    upper = xp.where(side > 0, d["lid_upper_l"], d["lid_upper_r"])
    lower = d["lid_lower"]
    s_up = xp.cos(upper) * uy - xp.sin(upper) * uz
    s_low = -xp.cos(lower) * uy + xp.sin(lower) * uz
    lid_cut = xp.maximum(s_up, s_low)
    lid = xp.maximum(_length(ux, uy, uz, xp) - d["lid_r"], -lid_cut)
    skin = _smin(skin, lid, 0.004, xp)

    teeth = xp.minimum(_rounded_box(qx, qy, qz, d["teeth_upper_c"], d["teeth_half"], 0.003, xp),
                       _rounded_box(qx, yj, zj, d["teeth_lower_c"], d["teeth_half"], 0.003, xp))
    tongue = _ellipsoid(qx, yj, zj, d["tongue_c"], (0.02, 0.008, 0.025), xp)
    teeth = xp.minimum(teeth, tongue)
    mouth = _ellipsoid(qx, qy, qz, d["throat_c"], d["throat_r"], xp)  # the dark back of the open mouth
    br = d["brow_r"]
    brow = xp.minimum(_round_cone(ax, qy, qz, d["brow_a"], d["brow_b"], (br * 1.2, br), xp),
                      _round_cone(ax, qy, qz, d["brow_b"], d["brow_c"], (br, br * 0.6), xp))

    hc, hr, ph = d["hair_centre"], d["hair_radii"], d["texture_phase"]
    outer = _ellipsoid(qx, qy, qz, hc, hr, xp)
    bumps = psin(CURL_FREQUENCY * qx + ph[0], xp) * psin(CURL_FREQUENCY * qy + ph[1], xp) * \
        psin(CURL_FREQUENCY * qz + ph[2], xp)
    # Two lower bounds of the distance to the bumped shell: the smooth shell at the bumps' full height (tight
    # far away) and the bumped distance divided by its Lipschitz bound (psin's slope is at most 8 per period).
    curl = d["hair_curl"]
    lipschitz = 1.0 + 0.5 * curl * 8.0 * CURL_FREQUENCY
    outer = xp.maximum(outer - curl, (outer - curl * (0.5 + 0.5 * bumps)) / lipschitz)
    outer = xp.minimum(outer, _sphere(qx, qy, qz, d["bun_c"], d["hair_bun"], xp))
    hb, hf = d["hair_bottom"], d["hair_face"]
    below = (hb[0] + hb[1] * qz - qy) / _sqrt(1.0 + hb[1] * hb[1], xp)
    # Thin the shell towards its lower edge, so short hair ends on the skin instead of as the rim of a cap.
    taper = d["hair_taper"]
    outer = outer + taper[0] * xp.clip(1.0 + below / taper[1], 0.0, 1.0)
    face = xp.maximum(xp.minimum(qz - hf[0], hf[1] - qy), xp.minimum(qz - hf[2], hf[3] - qy))
    hair = _smax(_smax(outer, below, 0.01, xp), face, 0.006, xp)

    # Head parts are in head-local units; the neck and shoulders in world units.
    k = P.HEAD_SCALE
    skin, eye, lid, teeth, tongue, brow, hair, mouth = (
        k * v for v in (skin, eye, lid, teeth, tongue, brow, hair, mouth))
    lips, cavity, nostril, nose, ear = k * lips, k * cavity, k * nostril, k * nose, k * ear
    nt, r = d["neck_top"], d["rot"]
    px, py, pz = P.HEAD_PIVOT
    vx, vy, vz = k * nt[0] - px, k * nt[1] - py, k * nt[2] - pz
    neck_top = (r[0] * vx + r[1] * vy + r[2] * vz + px, r[3] * vx + r[4] * vy + r[5] * vz + py,
                r[6] * vx + r[7] * vy + r[8] * vz + pz)
    neck = _round_cone(wx, wy, wz, d["neck_base"], neck_top, (d["neck_r"] * 1.2, d["neck_r"]), xp)
    shirt = _rounded_box(wx, wy, wz, d["torso_c"], d["torso_half"], 0.075, xp)
    skin = _smin(skin, neck, 0.035, xp)

    return {"skin": skin, "shirt": shirt, "eye": eye, "lid": lid, "teeth": teeth, "tongue": tongue,
            "mouth": mouth, "brow": brow, "hair": hair, "lips": lips, "cavity": cavity, "nostril": nostril,
            "nose": nose, "ear": ear, "neck": neck,
            "q": (qx, qy, qz), "ax": ax, "side": side, "lid_cut": lid_cut, "s_up": s_up}


def _clip(dist, x, y, z, xp):
    box = xp.maximum(xp.maximum(xp.abs(x), xp.abs(y)), xp.abs(z)) - SCENE_BOX
    ball = _length(x, y, z, xp) - SCENE_RADIUS
    return xp.maximum(dist, xp.maximum(box, ball))


def scene_distance(x, y, z, d, xp):
    """Signed distance bound of the whole scene at world points (arrays of one shape)."""
    c = components(x, y, z, d, xp)
    solid = xp.minimum(xp.minimum(xp.minimum(c["skin"], c["shirt"]), xp.minimum(c["eye"], c["mouth"])),
                       xp.minimum(xp.minimum(c["teeth"], c["brow"]), c["hair"]))
    return _clip(solid, x, y, z, xp)


def part_label(c: dict, material, xp):
    """Part label (int array, an index of `PART_NAMES`) of surface points from their `components` and material.

    Materials map to parts directly (eye -> eyes, teeth/tongue and the throat -> mouth_interior, brow, hair,
    shirt). A skin point belongs to the last of neck, ears, nose, nostrils (-> nose), eyelids, lips and the
    carved mouth cavity (-> mouth_interior) whose own surface (a carved one's negated distance) lies within
    `_PART_TOLERANCE` of the skin's there, else to the skin.
    """
    skin = c["skin"]
    label = xp.full(xp.shape(skin), PART["skin"], xp.int32)
    for key, dist, part in (("neck", c["neck"], "neck"), ("ear", c["ear"], "ears"), ("nose", c["nose"], "nose"),
                            ("nostril", -c["nostril"], "nose"), ("lid", c["lid"], "eyelids"),
                            ("lips", c["lips"], "lips"), ("cavity", -c["cavity"], "mouth_interior")):
        label = xp.where(xp.abs(dist - skin) < _PART_TOLERANCE[key], PART[part], label)
    by_material = xp.asarray([PART["skin"], PART["shirt"], PART["eyes"], PART["mouth_interior"], PART["brows"],
                              PART["hair"], PART["mouth_interior"]], xp.int32)
    return xp.where(material == SKIN, label, by_material[material])


def surface_colour(x, y, z, d, xp):
    """Linear-light albedo (r, g, b arrays), material id (int array) and part label (int array, `part_label`)
    of the surface at world points.

    The material is the part whose distance is smallest (the surface the point lies on); skin varies with
    procedural noise (in head-local coordinates, so it moves with the head), blends into the lip colour, the
    dark mouth interior and nostrils; eyes show sclera, iris (with a dark rim) and pupil along the gaze;
    the upper lid's cut edge is drawn as a lash line; hair carries strand streaks.
    """
    c = components(x, y, z, d, xp)
    qx, qy, qz = c["q"]
    ph = d["texture_phase"]
    names = ("skin", "shirt", "eye", "teeth", "brow", "hair", "mouth")
    dist = xp.stack([c[n] for n in names])
    material = xp.argmin(dist, axis=0)

    def rgb(col):
        return tuple(xp.asarray(v) for v in col)

    def mix(a, b, w):
        return tuple(ai + (bi - ai) * w for ai, bi in zip(a, b))

    def scale(a, k):
        return tuple(ai * k for ai in a)

    # Skin: two octaves of a cheap noise, lips, mouth interior, nostrils.
    n1 = psin(9.0 * qx + ph[0], xp) * psin(11.0 * qy + ph[1], xp) * psin(8.0 * qz + ph[2], xp)
    n2 = psin(31.0 * qx + 1.3 * ph[1], xp) * psin(29.0 * qy + ph[2], xp) * psin(33.0 * qz + ph[0], xp)
    skin = scale(d["skin_rgb"], 1.0 + d["skin_texture"] * (2.0 * n1 + n2))
    blush = xp.clip(1.0 - _sphere(c["ax"], qy, qz, d["cheek_c"], d["cheek_r"], xp) / 0.02, 0.0, 1.0)
    skin = mix(skin, (skin[0] * 1.06, skin[1] * 0.9, skin[2] * 0.9), 0.5 * blush)
    w_lips = xp.clip(1.0 - (c["lips"] - c["skin"]) / 0.004, 0.0, 1.0)
    skin = mix(skin, d["lip_rgb"], w_lips)
    w_cavity = xp.clip((-c["cavity"] - c["skin"] + 0.0025) / 0.002, 0.0, 1.0)
    skin = mix(skin, rgb(_MOUTH), w_cavity)
    w_nostril = xp.clip((-c["nostril"] - c["skin"] + 0.002) / 0.003, 0.0, 1.0)
    skin = mix(skin, scale(d["skin_rgb"], 0.25), w_nostril)

    shirt = scale(d["shirt_rgb"], 1.0 + 0.06 * n2)

    # Eye: angle between the surface direction from the eye centre and the gaze.
    ec = d["eye_c"]
    gx = d["gaze"][0] * c["side"]
    ux, uy, uz = c["ax"] - ec[0], qy - ec[1], qz - ec[2]
    cos_a = (ux * gx + uy * d["gaze"][1] + uz * d["gaze"][2]) / _length(ux, uy, uz, xp)
    iris_w = xp.clip((cos_a - 0.875) / 0.012, 0.0, 1.0)
    pupil_w = xp.clip((cos_a - 0.978) / 0.004, 0.0, 1.0)
    rim = xp.clip(1.0 - (cos_a - 0.875) / 0.03, 0.0, 1.0)
    iris = scale(d["iris_rgb"], 1.0 - 0.55 * rim + 0.25 * psin(40.0 * cos_a, xp))
    eye = mix(mix(rgb(_SCLERA), iris, iris_w), rgb(_PUPIL), pupil_w)

    # Lids: skin, a little darker, with a lash line along the upper lid's cut edge.
    w_lid = xp.clip(1.0 - (c["lid"] - c["skin"]) / 0.003, 0.0, 1.0)
    skin = mix(skin, scale(skin, 0.88), w_lid)
    lash = xp.clip(1.0 - xp.abs(c["s_up"]) / 0.0025, 0.0, 1.0) * (c["s_up"] >= c["lid_cut"] - 1e-6)
    skin = mix(skin, rgb(_LASH), w_lid * lash)

    teeth = mix(rgb(_TEETH), rgb(_TONGUE), (c["tongue"] <= c["teeth"] + 1e-6) * 1.0)
    brow = scale(d["hair_rgb"], 0.85)

    # Hair: streaks along the head's meridians, broken by noise.
    hc = d["hair_centre"]
    azimuth = xp.arctan2(qx - hc[0], qz - hc[2])
    streak = psin(d["hair_strands"] * azimuth / (2.0 * math.pi) + 0.4 * n1 + 3.0 * qy, xp)
    fine = psin(2.7 * d["hair_strands"] * azimuth / (2.0 * math.pi) + 0.9 * n2, xp)
    hair = scale(d["hair_rgb"], 1.0 + 0.16 * streak + 0.1 * fine + 0.08 * n1)

    parts = (skin, shirt, eye, teeth, brow, hair, rgb(_MOUTH))
    out = []
    for ch in range(3):
        v = parts[0][ch] * xp.ones_like(x)
        for m in range(1, len(parts)):
            v = xp.where(material == m, parts[m][ch], v)
        out.append(v)
    return tuple(out), material, part_label(c, material, xp)
