"""After training: frames, videos and meshes of a trained avatar (`frames`, `video`, `mesh`).

CLI: ``python -m hfagp.render <command> WORKDIR ...`` (see `hfagp.render.__main__`).
"""
