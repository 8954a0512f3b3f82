"""Train an HFA-GP avatar: python train.py --config=configs/rgb.py[:variant] --workdir=DIR [--config.x=y ...]

All behaviour lives in `hfagp.train_lib`; this file only parses flags. Rerunning the same command
resumes from the last complete checkpoint in --workdir.
"""

import sys

from absl import app, flags
from ml_collections import config_flags

config_flags.DEFINE_config_file("config", "configs/rgb.py:cpu", "Training config (a configs/*.py file).",
                                lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, summaries and samples.")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    del argv
    from absl import logging

    logging.set_verbosity(logging.WARNING)  # orbax logs every checkpoint step at INFO
    from hfagp.config_checks import ConfigError
    from hfagp.train_lib import TrainingError, train_and_evaluate

    try:
        train_and_evaluate(flags.FLAGS.config, flags.FLAGS.workdir)
    except (ConfigError, TrainingError, FileNotFoundError) as e:
        print(f"train.py: error: {e}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    from hfagp.host import reexec_with_huge_pages

    reexec_with_huge_pages()  # glibc malloc + transparent huge pages: ~25% faster CPU steps (hfagp/host.py)
    app.run(main)
