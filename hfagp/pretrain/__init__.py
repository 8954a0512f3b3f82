"""Pretraining a miniature EG3D prior on the procedural head world (`python -m hfagp.pretrain`).

No FFHQ checkpoint reaches this project's machines, so the prior that makes quality measurable is trained
here: an auto-decoder (a W code per scene, free or mapped from the world's identity and expression parameters;
multi-view image, depth and mask supervision, optionally weighted on the face) over many head-world identities,
exported as a generator directory that `eg3d_flax.load_generator` reads (the shipped result:
pretrained/heads128/, configs/pretrain_heads.py; the face prior: configs/pretrain_face.py). Stages and their
order: `hfagp.pretrain.loop`.
"""
