"""HFA-GP: personalised EG3D prior, avatar fitting and losses (JAX/Flax)."""
