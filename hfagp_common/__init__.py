"""Small helpers every package of the project may use; they import nothing of the project and no JAX.

  hfagp_common.atomic    directories and files written atomically (a temporary sibling renamed into place)
  hfagp_common.cli       the CLIs' argument parser and runner: expected errors become one line, exit code 2
  hfagp_common.host      host-process settings applied before JAX starts (huge-page malloc)
  hfagp_common.images    float images in [-1, 1] <-> uint8, contact-sheet grids, PNG writing
  hfagp_common.batching  a function applied over fixed-size, padded batches
  hfagp_common.digest    the SHA-256 of a file (streamed)
"""
