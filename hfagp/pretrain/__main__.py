"""``python -m hfagp.pretrain --config=configs/pretrain_heads.py --workdir=DIR [--config.x=y ...]``

Renders the pretraining data, trains the prior, validates it on held-out identities and exports the best
generator to DIR/generator (see `hfagp.pretrain.loop`). Rerunning the same command resumes (a run stopped by a
signal or by `schedule.stop_after_hours` continues where it stopped). configs/pretrain_face.py: the face prior.
"""

import json
import shlex
import sys

from absl import flags
from ml_collections import config_flags

from hfagp_common.cli import absl_main, flag_errors, require_path_flags, run_absl

with flag_errors("hfagp.pretrain"):  # the default config is loaded, with the --config.* overrides, right here
    config_flags.DEFINE_config_file("config", "configs/pretrain_heads.py", "Pretraining config.", lock_config=True)
flags.DEFINE_string("workdir", None, "Directory for the data cache, checkpoints and the exported generator.")
flags.mark_flags_as_required(["workdir"])
require_path_flags("workdir")


def _pretrain():
    from hfagp.pretrain.loop import pretrain

    command = "python -m hfagp.pretrain " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    result = pretrain(flags.FLAGS.config, flags.FLAGS.workdir, command=command)
    print(json.dumps({k: result.get(k) for k in ("best_step", "held_out_metrics", "wall_time_s", "stopped_at")
                      if k in result}, indent=1))


main = absl_main("hfagp.pretrain", _pretrain)


if __name__ == "__main__":
    run_absl("hfagp.pretrain", main)
