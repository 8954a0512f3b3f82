"""``python -m hfagp.make_world --config=configs/rgb.py[:variant] --workdir=DIR [--config.x=y ...]``

Makes the world with ground truth the config names (`hfagp.make_world.make_world`), before `train.py` with the
same flags trains on it.
"""

from absl import flags
from ml_collections import config_flags

from hfagp.datasets import DEFAULT_CONFIG
from hfagp_common.cli import absl_main, flag_errors, require_path_flags, run_absl

NAME = "hfagp.make_world"

with flag_errors(NAME):  # the default config is loaded, with the --config.* overrides, right here
    config_flags.DEFINE_config_file("config", DEFAULT_CONFIG, "Training config (a configs/*.py file).",
                                    lock_config=True)
flags.DEFINE_string("workdir", None, "The run's directory (the world goes to WORKDIR/<kind>_world unless the "
                                     "config names its directory).")
flags.mark_flags_as_required(["workdir"])
require_path_flags("workdir")


def _make_world():
    from hfagp.make_world import make_world

    print(make_world(flags.FLAGS.config, flags.FLAGS.workdir))


main = absl_main(NAME, _make_world)


if __name__ == "__main__":
    run_absl(NAME, main, huge_pages=False)
