"""Train an HFA-GP avatar: python train.py --config=configs/rgb.py[:variant] --workdir=DIR [--config.x=y ...]

This file is intentionally kept short: all behaviour lives in `hfagp.train` (importable and tested).
Rerunning the same command resumes from the last complete checkpoint in --workdir.
"""

from absl import flags
from ml_collections import config_flags

from hfagp_common.cli import absl_main, flag_errors, require_path_flags, run_absl

with flag_errors("train.py"):  # the default config is loaded, with the --config.* overrides, right here
    config_flags.DEFINE_config_file("config", "configs/rgb.py:cpu", "Training config (a configs/*.py file).",
                                    lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for checkpoints, summaries and samples.")
flags.mark_flags_as_required(["workdir"])
require_path_flags("workdir")


def _train():
    from hfagp.train.loop import train_and_evaluate

    train_and_evaluate(flags.FLAGS.config, flags.FLAGS.workdir)


main = absl_main("train.py", _train)


if __name__ == "__main__":
    run_absl("train.py", main)
