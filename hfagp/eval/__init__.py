"""After training: scoring a run on held-out frames and novel views (`evaluate`), and the PTI baseline (`pti`).

CLI: ``python -m hfagp.eval WORKDIR [--baseline pti] ...`` (see `hfagp.eval.__main__`).
"""
