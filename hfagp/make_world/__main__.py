"""``python -m hfagp.make_world --config=configs/rgb.py[:variant] --workdir=DIR [--config.x=y ...]``

Makes the world with ground truth the config names (`hfagp.make_world.make_world`), before `train.py` with the
same flags trains on it.
"""

import sys

from absl import app, flags
from ml_collections import config_flags

from hfagp.datasets import DEFAULT_CONFIG
from hfagp_common.cli import absl_flags_parser, flag_errors

NAME = "hfagp.make_world"

with flag_errors(NAME):  # the default config is loaded, with the --config.* overrides, right here
    config_flags.DEFINE_config_file("config", DEFAULT_CONFIG, "Training config (a configs/*.py file).",
                                    lock_config=True)
flags.DEFINE_string("workdir", None, "The run's directory (the world goes to WORKDIR/<kind>_world unless the "
                                     "config names its directory).")
flags.mark_flags_as_required(["workdir"])


def main(argv):
    del argv
    from absl import logging

    from hfagp.make_world import make_world
    from hfagp_common import cli

    def run():
        print(make_world(flags.FLAGS.config, flags.FLAGS.workdir))

    logging.set_verbosity(logging.WARNING)  # absl's INFO lines (backend discovery) are not the command's output
    sys.exit(cli.run(NAME, run))


if __name__ == "__main__":
    app.run(main, flags_parser=absl_flags_parser(NAME))  # bad flags: one line, exit 2
