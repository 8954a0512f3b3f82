"""``python -m hfagp.experiments --config=configs/experiments.py --out=DIR [--config.x=y ...]``

Runs the enabled parts of the experiments (resumable) and writes their tables to DIR/tables/ and
DIR/results.md (see `hfagp.experiments.runner`).
"""

from absl import flags
from ml_collections import config_flags

from hfagp_common.cli import absl_main, flag_errors, require_path_flags, run_absl

with flag_errors("hfagp.experiments"):  # the default config is loaded, with the --config.* overrides, right here
    config_flags.DEFINE_config_file("config", "configs/experiments.py", "Experiments config.", lock_config=True)
flags.DEFINE_string("out", None, "Directory for the worlds, runs and tables.")
flags.mark_flags_as_required(["out"])
require_path_flags("out")


def _run_experiments():
    from hfagp.experiments.runner import run_experiments

    texts = run_experiments(flags.FLAGS.config, flags.FLAGS.out)
    print("\n".join(texts.values()))


main = absl_main("hfagp.experiments", _run_experiments)


if __name__ == "__main__":
    run_absl("hfagp.experiments", main)
