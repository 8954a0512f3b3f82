"""Train an HFA-GP avatar: python train.py --config=configs/rgb.py[:variant] --workdir=DIR [--config.x=y ...]

This file is intentionally kept short: all behaviour lives in `hfagp.train` (importable and tested).
Rerunning the same command resumes from the last complete checkpoint in --workdir.
"""

import sys

from absl import app, flags
from ml_collections import config_flags

from hfagp_common.cli import absl_flags_parser, flag_errors

with flag_errors("train.py"):  # the default config is loaded, with the --config.* overrides, right here
    config_flags.DEFINE_config_file("config", "configs/rgb.py:cpu", "Training config (a configs/*.py file).",
                                    lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, summaries and samples.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    del argv
    from absl import logging

    from hfagp.train.loop import train_and_evaluate
    from hfagp_common import cli

    def train():
        train_and_evaluate(flags.FLAGS.config, flags.FLAGS.workdir)

    logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint step at INFO
    sys.exit(cli.run("train.py", train))


if __name__ == "__main__":
    from hfagp_common.host import reexec_with_huge_pages

    reexec_with_huge_pages()  # glibc malloc + transparent huge pages: ~25% faster CPU steps (hfagp_common/host.py)
    app.run(main, flags_parser=absl_flags_parser("train.py"))  # bad flags: one line, exit 2
