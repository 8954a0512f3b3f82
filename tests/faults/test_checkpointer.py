"""Checkpoint faults on a small state, without training: damage after the fact, full disks, changed configs.

The damage matrix runs on a `Checkpointer` holding a few arrays (seconds); test_training_faults.py checks
on real runs that a resume after each kind of fault repeats the uninterrupted run exactly.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from faults.harness import TRAIN_STEPS, TUNING_START, tiny_config



def _state(step: int):
    import jax
    import jax.numpy as jnp

    key = jax.random.PRNGKey(step)
    return {"params": {"w": jax.random.normal(key, (64, 256)), "b": jnp.full((256,), float(step))},
            "step": jnp.asarray(step, jnp.int32)}


def _sharding():
    import jax

    return jax.sharding.SingleDeviceSharding(jax.devices()[0])


def _checkpointer(workdir, logs=None):
    from hfagp.runtime.checkpointing import Checkpointer

    return Checkpointer(workdir, keep=5, log=(logs.append if logs is not None else print))


def _saved_run(workdir: Path, steps=(2, 4, 6)) -> Path:
    """A workdir with checkpoints at `steps` and one metrics line per step 1..max(steps)."""
    ckpt = _checkpointer(workdir)
    for step in range(1, max(steps) + 1):
        ckpt.log_metrics(step, {"loss": float(step)})
        if step in steps:
            ckpt.save(step, _state(step), json.dumps({"next_index": step}))
            ckpt.wait()
    return workdir


def _largest_file(step_dir: Path) -> Path:
    return max((p for p in (step_dir / "state").rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def _truncate_array_file(d):
    f = _largest_file(d)
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])


def _overwrite_array_bytes(d):  # decodes fine: only the digest stored at save time notices
    f = _largest_file(d)
    data = bytearray(f.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = bytes(range(64))
    f.write_bytes(bytes(data))


def _delete_manifest(d):
    (d / "state" / "manifest.ocdbt").unlink()


def _truncate_metadata(d):
    f = d / "state" / "_METADATA"
    f.write_bytes(f.read_bytes()[:100])


def _empty_directory(d):
    shutil.rmtree(d)
    d.mkdir()


def _delete_data_item(d):
    shutil.rmtree(d / "data")


def _garbage_iterator_json(d):
    (d / "data" / "metadata").write_text("{not json")


def _zero_length_files(d):
    for f in d.rglob("*"):
        if f.is_file():
            f.write_bytes(b"")


DAMAGE = {f.__name__.lstrip("_"): f for f in (
    _truncate_array_file, _overwrite_array_bytes, _delete_manifest, _truncate_metadata, _empty_directory,
    _delete_data_item, _garbage_iterator_json, _zero_length_files)}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_latest_checkpoint_is_moved_aside_and_the_previous_one_restored(tmp_path, damage, ledger):
    with ledger.fault(f"checkpoint damaged after the fact ({damage})"):
        workdir = _saved_run(tmp_path / "run")
        DAMAGE[damage](workdir / "checkpoints" / "6")
        logs = []
        restored = _checkpointer(workdir, logs).restore_latest(_state(0), _sharding())
        assert restored is not None
        state, position = restored
        assert int(state["step"]) == 4 and position == json.dumps({"next_index": 4})
        np.testing.assert_array_equal(np.asarray(state["params"]["w"]), np.asarray(_state(4)["params"]["w"]))
        assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["2", "4"]
        assert (workdir / "corrupt_checkpoints" / "6").is_dir()  # moved aside, not deleted
        assert len(logs) == 1 and "checkpoint 6" in logs[0] and "falling back to step 4" in logs[0], logs
        steps = [json.loads(line)["step"] for line in (workdir / "metrics.jsonl").read_text().splitlines()]
        assert steps == [1, 2, 3, 4]  # the log reads as if the run had stopped at step 4


def test_every_checkpoint_damaged_starts_afresh_and_keeps_them_all(tmp_path, ledger):
    with ledger.fault("every checkpoint damaged"):
        workdir = _saved_run(tmp_path / "run", steps=(2, 4))
        for step in ("2", "4"):
            _truncate_array_file(workdir / "checkpoints" / step)
        logs = []
        assert _checkpointer(workdir, logs).restore_latest(_state(0), _sharding()) is None
        assert sorted(p.name for p in (workdir / "corrupt_checkpoints").iterdir()) == ["2", "4"]
        assert "starting afresh" in logs[-1]
        assert (workdir / "metrics.jsonl").read_text() == ""


def test_checkpoint_of_another_train_state_is_refused_not_moved(tmp_path):
    import jax.numpy as jnp

    from hfagp.workdir import CheckpointError

    workdir = _saved_run(tmp_path / "run", steps=(2,))
    other = {"params": {"w": jnp.zeros((64, 128)), "b": jnp.zeros((128,))}, "step": jnp.asarray(0)}
    with pytest.raises(CheckpointError, match="does not fit this run's train state"):
        _checkpointer(workdir).restore_latest(other, _sharding())
    assert (workdir / "checkpoints" / "2").is_dir() and not (workdir / "corrupt_checkpoints").exists()


def test_a_killed_write_leaves_a_cut_line_that_the_resume_drops(tmp_path):
    from hfagp.runtime.checkpointing import rewind_jsonl

    log = tmp_path / "metrics.jsonl"
    log.write_text('{"step": 1, "loss": 1.0}\n{"step": 2, "loss": 2.0}\n{"step": 3, "lo')
    assert rewind_jsonl(log, 2) == 1
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [1, 2]


def _enospc_on_save_of(monkeypatch, step: int):
    """The orbax save of checkpoint `step` fails as a full disk does, right before its atomic rename."""
    from orbax.checkpoint._src.path import atomicity

    original = atomicity.AtomicRenameTemporaryPath.finalize

    async def finalize(self):
        if Path(str(self.get_final())).name == str(step):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.get()))
        return await original(self)

    monkeypatch.setattr(atomicity.AtomicRenameTemporaryPath, "finalize", finalize)


def _assert_full_disk_error(error, step, previous):
    from hfagp_common.cli import error_line

    line = error_line("train.py", error)
    assert "\n" not in line and f"cannot write checkpoint {step}" in line and "No space left on device" in line
    assert f"the last complete checkpoint is step {previous}" in line


def test_full_disk_during_a_save_is_one_line_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch, ledger):
    from hfagp.runtime.checkpointing import CheckpointSaveError

    with ledger.fault("disk full during a save (patched writer)"):
        workdir = _saved_run(tmp_path / "run", steps=(2,))
        ckpt = _checkpointer(workdir)
        _enospc_on_save_of(monkeypatch, 4)
        with pytest.raises(CheckpointSaveError) as failure:
            ckpt.save(4, _state(4), "{}")
            ckpt.wait()
        _assert_full_disk_error(failure.value, 4, 2)
        ckpt.wait()  # reported once: the loop's clean-up does not raise it again
        assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["2"]  # nothing half-written
        monkeypatch.undo()
        state, _ = _checkpointer(workdir).restore_latest(_state(0), _sharding())
        assert int(state["step"]) == 2


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 4 MiB tmpfs (root only; skipped elsewhere), unmounted afterwards."""
    mount = tmp_path / "tmpfs"
    mount.mkdir()
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root")
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {result.stderr.decode().strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_real_full_disk_during_a_save(small_tmpfs, ledger):
    """A 1.5 MiB incompressible state fits twice on a 4 MiB tmpfs, not three times."""
    import jax
    import jax.numpy as jnp

    from hfagp.runtime.checkpointing import CheckpointSaveError

    def state(step):
        return {"w": jax.random.normal(jax.random.PRNGKey(step), (768, 512)), "step": jnp.asarray(step)}

    with ledger.fault("disk full during a save (tmpfs)"):
        workdir = small_tmpfs / "run"
        ckpt = _checkpointer(workdir)
        ckpt.save(1, state(1), "{}")
        ckpt.wait()
        ckpt.save(2, state(2), "{}")
        with pytest.raises(CheckpointSaveError) as failure:
            ckpt.save(3, state(3), "{}")
            ckpt.wait()
        _assert_full_disk_error(failure.value, 3, 2)
        assert sorted(p.name for p in (workdir / "checkpoints").iterdir()) == ["1", "2"]
        restored, _ = _checkpointer(workdir).restore_latest(state(0), _sharding())
        np.testing.assert_array_equal(np.asarray(restored["w"]), np.asarray(state(2)["w"]))


# ---------------------------------------------------------------------------------- changed configs on resume

def _saved_values(world="/data/w", **overrides) -> dict:
    return json.loads(tiny_config(world, **overrides).to_json_best_effort())


@pytest.mark.parametrize("change, allowed", [
    ({"schedule.total_steps": TRAIN_STEPS + 20}, True),         # extend the run, same stages
    ({"log_every": 7, "eval_every": 3, "progress_bar": True}, True),
    ({"eval.max_frames": 4, "checkpoint.every": 2, "checkpoint.keep": 9}, True),
    ({"distributed.coordinator_address": "host:1234"}, True),
    ({"optim.learning_rate": 0.5}, False),
    ({"model.k": 4}, False),
    ({"data.synthetic.dir": "/elsewhere"}, False),
    ({"schedule.generator_tuning_start": TUNING_START + 1}, False),
    ({"schedule.total_steps": TUNING_START}, False),            # shorter than the tuning start: no stage 2
])
def test_resume_refuses_changes_outside_the_safe_list(change, allowed):
    from hfagp.train.resume import config_changes

    refused, added = config_changes(_saved_values(), tiny_config("/data/w", **change))
    assert added == []
    assert (refused == []) == allowed, refused
    if not allowed:
        assert sorted(refused) == sorted(change)


def test_resume_names_refused_keys_and_the_knob_allows_them(tmp_path):
    from hfagp.train.resume import check_resume
    from hfagp_common.cli import ConfigError

    workdir = tmp_path / "run"
    (workdir / "checkpoints" / "4").mkdir(parents=True)
    (workdir / "config.json").write_text(json.dumps(_saved_values()))
    with pytest.raises(ConfigError, match=r"changed model\.k \(8 -> 4\), optim\.learning_rate \(0\.001 -> 0\.5\); "
                                          r".*resume_allow_changes=model\.k,optim\.learning_rate"):
        check_resume(workdir, tiny_config("/data/w", **{"optim.learning_rate": 0.5, "model.k": 4}))
    check_resume(workdir, tiny_config("/data/w", **{"optim.learning_rate": 0.5, "model.k": 4,
                                                    "checkpoint.resume_allow_changes": "optim,model.k"}))
    (workdir / "config.json").write_text("{")
    with pytest.raises(ConfigError, match="config cannot be compared"):
        check_resume(workdir, tiny_config("/data/w"))
    check_resume(workdir, tiny_config("/data/w", **{"checkpoint.resume_allow_changes": "*"}))


def test_knobs_added_since_the_run_started_are_allowed(tmp_path, capsys):
    from hfagp.train.resume import check_resume

    workdir = tmp_path / "run"
    (workdir / "checkpoints" / "4").mkdir(parents=True)
    saved = _saved_values()
    del saved["checkpoint"]["resume_allow_changes"]
    (workdir / "config.json").write_text(json.dumps(saved))
    check_resume(workdir, tiny_config("/data/w"))
    assert "checkpoint.resume_allow_changes" in capsys.readouterr().err
