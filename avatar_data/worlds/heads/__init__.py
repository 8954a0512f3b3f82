"""A procedural talking-head world with ground truth, rendered by its own JAX SDF sphere tracer (not by EG3D).

Stylised heads (skull and turning jaw, neck and shirted shoulders, nose, ears, eyes with iris, pupil and gaze,
blinking lids, lips, mouth cavity with teeth and tongue, brows, five hair styles, noise-textured skin) are
signed distance fields (`model`), traced at EG3D cameras (`render`), and filmed talking (`world`), so that an
HFA-GP pipeline can be scored against known depth, masks, expression parameters and novel views, and an
EG3D prior can be pretrained on other people of the same world (`dataset`).

Parameters (`params`; all random choices from numpy generators with a fixed stream per purpose):

* identity (`params.sample_identity(seed)`): 16 shape scalars (head width/height/depth, jaw width, chin
  length, cheeks, nose length/width, eye spacing/size, ear size, lip thickness, mouth width, brow thickness,
  neck width, shoulder width), skin/lip/iris/hair/shirt/background colours, a hair style of `HAIR_STYLES`
  (short, bob, curly, long, bun) with its geometry, and texture phases;
* expression [10], neutral = 0: jaw_open [0, 1], smile [-0.5, 1], pucker [0, 1], brow_raise [-0.5, 1],
  brow_furrow [0, 1], blink_l, blink_r [0, 1] (l = the person's left, +x), gaze_x, gaze_y [-1, 1],
  cheek_puff [0, 1] (`params.EXPRESSION_RANGES`);
* head pose [6]: yaw, pitch, roll (radians) about the top of the neck and a translation, separate from the
  camera.

Cameras are EG3D labels [N, 25] (`avatar_data.cameras`; FFHQ intrinsics, radius 2.7, pivot (0, 0, 0.2)); the
ray of pixel column i passes through (i + 0.5) / R as in EG3D's RaySampler. Every surface lies inside EG3D's
box [-0.5, 0.5]^3 and between depths 2.25 and 3.3 (EG3D FFHQ's ray_start and ray_end). Outputs per image:
rgb uint8 [R, R, 3] (2 x 2 supersampled), depth float32 [R, R] (euclidean distance from the camera centre
along the unit ray, EG3D's image_depth; 0 on the background) and mask coverage in [0, 1].

The video world, ``python -m avatar_data.worlds.heads OUT_DIR [--seed S] [--frames T] [--test-frames N]
[--resolution R] [--novel-views Y:P,...] [--speech synthetic|espeak|PATH.wav] [--overwrite] [--quiet]``,
writes the layout of `avatar_data.worlds.layout` (so `hfagp` trains and evaluates on it unchanged):

* ``frames/`` (EG3D folder, T frames in time order, filmed by a fixed frontal camera while the head moves;
  the labels are that camera in the head's rest frame, as a face tracker reports it, so head motion is
  camera motion as in EG3D's FFHQ poses), ``split.json`` (the last N frames are the test frames),
  ``novel_views/`` (EG3D folder: every test frame from yaw +-20, +-35 and pitch +-15 degrees by default, head
  pose as in that frame, labels in the head's rest frame too) + ``views.json``;
* ``expression.npy`` [T, 76] float32: columns 0-9 the true expression (`params.EXPRESSION_NAMES` order),
  columns 10-75 a fixed seeded linear mix of them, all with AR(1) tracker-like noise (std 0.02);
  ``aud.npy`` [T, 16, 29] (`avatar_data.audio_features.frame_features` of the speech) and ``speech.wav``
  (16 kHz); ``nerface/`` and ``adnerf/`` (the same video in those layouts);
* ``ground_truth.npz``: identity vector and layout, expression [T, 10], pose [T, 6], labels (head frame, as
  in frames/), world_labels (the fixed world camera), depth float16 [T, R, R], mask float16 [T, R, R],
  novel_labels / novel_world_labels / novel_frame_index / novel_view_index / novel_depth / novel_mask,
  nose_tip [T, 3] (world); part_labels uint8 [T, R, R] and novel_part_labels [V, R, R] (the part each pixel's
  centre ray hits, `model.PART_NAMES`), face_points / novel_face_points float32 [T|V, 3, 2] (pixel positions of
  the mouth centre and the two eyes, `model.FACE_POINT_NAMES`);
* ``world.json``: format ``hfagp-head-world``, sizes, fps, seed, speech source, identity summary, the test
  expressions beyond the training range (the test frames add peaks of jaw_open 0.95, smile 0.85 and
  brow_raise 0.9, while the training frames keep jaw_open <= 0.7), part_names, face_point_names, timings.
  Version 2 added the part labels and face points; `avatar_data.worlds.layout.read_face_truth` reads them and
  says so when a world predates them.

The mouth follows the speech (jaw_open = the smoothed, 40 ms-lagged loudness; pucker/smile from the spectral
centroid); blinks every 3-5 s; brows, gaze and cheek puffs drift; the head turns by up to +-13 deg yaw,
+-6.5 deg pitch, +-3 deg roll. Same seed and options give byte-identical files (world.json's timings aside).

Identity split (`params`): evaluation worlds use seeds 0..999 (`EVALUATION_IDENTITY_SEEDS`); the pretraining
dataset (``python -m avatar_data.worlds.heads.dataset OUT --identities N --scenes S --views V --resolution R``,
resumable shards, `dataset.load_pretrain_dataset`) uses seeds >= 1000 only, and the video world refuses
those without ``--allow-pretrain-identity``. ``python -m avatar_data.worlds.heads.sheet OUT.png`` draws a contact
sheet (docs/images/heads/).

Speed measured on the 2-core CPU this was written on (jax 0.10 CPU; batches of 8 images rendered one after
another, so every loop stops when its own rays are done), quiet machine / shared with other jobs (load
average 4-6): a 128 x 128 image takes 0.07 / 0.16-0.19 s with the default adaptive 2 x 2 supersampling and
0.04 / 0.05-0.06 s without; compiling one (resolution, supersampling) program takes 15-25 s. The 200-frame
128 x 128 world with its 120 novel views took 45 s / 1 min 51 s of wall time, compilation included; the
pretraining dataset renders about 9 / 3-5 images per second at 128 x 128.

Importing this package or `params`, `views` and `speech` loads no jax; `model`, `render`, `world`, `dataset`
and `sheet` do.
"""

from avatar_data.worlds.heads.params import (
    EVALUATION_IDENTITY_SEEDS,
    EXPRESSION_NAMES,
    EXPRESSION_RANGES,
    HAIR_STYLES,
    PRETRAIN_IDENTITY_SEED_START,
    Identity,
    expression,
    pose,
    sample_identity,
)

__all__ = ["EVALUATION_IDENTITY_SEEDS", "EXPRESSION_NAMES", "EXPRESSION_RANGES", "HAIR_STYLES",
           "PRETRAIN_IDENTITY_SEED_START", "Identity", "expression", "pose", "sample_identity"]
