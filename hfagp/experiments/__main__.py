"""``python -m hfagp.experiments --config=configs/experiments.py --out=DIR [--config.x=y ...]``

Runs the enabled parts of the experiments (resumable) and writes their tables to DIR/tables/ and
DIR/results.md (see `hfagp.experiments.runner`).
"""

import sys

from absl import app, flags
from ml_collections import config_flags

from hfagp_common.cli import absl_flags_parser, flag_errors

with flag_errors("hfagp.experiments"):  # the default config is loaded, with the --config.* overrides, right here
    config_flags.DEFINE_config_file("config", "configs/experiments.py", "Experiments config.", lock_config=True)
flags.DEFINE_string("out", None, "Directory for the worlds, runs and tables.")
flags.mark_flags_as_required(["out"])


def main(argv):
    del argv
    from absl import logging

    from hfagp.experiments.runner import run_experiments
    from hfagp_common import cli

    def run():
        texts = run_experiments(flags.FLAGS.config, flags.FLAGS.out)
        print("\n".join(texts.values()))

    logging.set_verbosity(logging.WARNING)
    sys.exit(cli.run("hfagp.experiments", run))


if __name__ == "__main__":
    from hfagp_common.host import reexec_with_huge_pages

    reexec_with_huge_pages()
    app.run(main, flags_parser=absl_flags_parser("hfagp.experiments"))  # bad flags: one line, exit 2
