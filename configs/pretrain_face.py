"""The face prior: a head-world EG3D prior that renders eyes, mouth and expressions (configs/pretrain_heads.py's
recipe, changed where the face needs it).

What differs from pretrain_heads (each a field of that base config):
  * codes shared by every scene: a code map (an MLP) of the world's identity and expression parameters instead of
    free per-scene codes, so every step teaches every scene how `jaw_open` or a blink looks;
  * many more people: 4096 identities x 3 scenes x 2 views (24576 images) instead of 256 x 6 x 4 (6144);
  * the loss looks at the face: its pixels (eyes, lids, brows, lips, mouth, nose) weigh 1 + 10 times, and the
    final image is compared by L1 and the L1 of its error's gradient (sharper than L2 alone);
  * a neural rendering resolution that resolves an eye (64 of 128 pixels), a larger generator step size.

Command (what made pretrained/face128/; resumable: rerun the same command to continue):
  python -m hfagp.pretrain --config=configs/pretrain_face.py --workdir=runs/pretrain_face
Hardware/runtime: 2 CPU cores: data rendering ~22 min, then 1.15-1.4 s per step of 4 images (12000 steps: about
4-4.5 hours), in chunks of at most `schedule.stop_after_hours` (each invocation checkpoints and stops after it;
rerun to continue). Minutes on a GPU.
Expected result: held-out identities inverted from one frontal view show eyes, brows and mouth (the prior's report,
`python -m hfagp.pretrain.report`), and avatars trained on it read back `jaw_open` from their pixels.
Variants: 'tiny' (a few steps on a handful of identities: tests and smoke runs).
"""

from __future__ import annotations

import ml_collections

from configs import pretrain_heads

# The schema and relations are the base config's: this file only changes values.
SCHEMA = pretrain_heads.SCHEMA
RELATIONS = pretrain_heads.RELATIONS


def get_config(variant: str = "") -> ml_collections.ConfigDict:
    c = pretrain_heads.get_config(variant)
    c.model.code = "params"
    c.loss.face_weight = 10.0
    c.loss.image_distance = "l1"
    c.loss.gradient = 1.0
    # The code map is shared by every scene: a smaller step than free codes, each of which sees a few updates.
    c.optim.code_lr = 1e-3
    c.optim.generator_lr = 5e-3
    if variant == "tiny":
        return c
    c.generator.neural_rendering_resolution = 64
    c.data.identities = 4096
    c.data.scenes_per_identity = 3
    c.data.views_per_scene = 2
    c.schedule.total_steps = 12000
    # A validation (3 held-out inversions at 64 px) costs about 3 minutes: every 2000 steps is ~8% of the run.
    c.schedule.eval_every = 2000
    c.schedule.patience = 3
    c.schedule.stop_after_hours = 2.5
    return c
