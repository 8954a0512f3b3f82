"""The whole GPU check in one command: environment, parity, step/render throughput, PyTorch, memory, summary.

    python3 benchmarks/device_check.py --out DIR            # on the GPU machine (within --budget, 480 s)
    python benchmarks/device_check.py --dry-run --out DIR    # the same script on CPU with tiny configs (CI)

Parts, in priority order (each a subprocess under its own timeout, clipped to what is left of --budget;
a part or row that runs out of time is killed and recorded as such, and the next one starts):

  env        GPU name, driver and memory (nvidia-smi), CPU, Python, jax/jaxlib/flax/optax/orbax/chex/
             numpy/torch versions, JAX's devices, which optional packages are missing
  parity     the parity tests (generator against the official PyTorch fixtures, LPIPS-alex) on the
             device with HFAGP_REQUIRE_FIXTURES=1: a missing fixture fails, and any skip fails the part
  steps      `step_throughput.py`, one process per row (exact peak device memory per row): FFHQ 512-128,
             batch 2, stage 2 then stage 1, each at float32:highest, bfloat16:tf32 and float32:tf32
  render     `render_throughput.py`: FFHQ 512-128 at batch 4, float32:highest and bfloat16:tf32
  torch      `torch_step.py --device cuda` (if torch and an EG3D clone are there): the official step with
             its CUDA kernels, stage 2 then 1, all-float32 with TF32 off (the JAX float32:highest
             counterpart), the official float16 SR blocks, and stage 2 all-float32 with TF32 on
  precision  `precision_report.py`: how far tf32 / default / bfloat16 move the fixture generators' outputs
             and gradients from the PyTorch reference and from float32:highest
  loader     `loader_throughput.py` if grain and tensorflow_datasets are importable (not on the lent GPU
             machines unless their wheels travel), against the frames/s the fastest step consumes

The EG3D kernels' build (nvcc, ninja) starts in the background after `env`, so it overlaps the parity
tests. All JAX children share one persistent compilation cache (`$JAX_COMPILATION_CACHE_DIR` if set, else a
temporary one), which on a GPU also holds XLA's autotuning results: the first step row's compile time is
cold, later rows reuse the convolution algorithm choices they share with earlier ones. After every part `DIR/summary.json` and `DIR/summary.md` are rewritten (rows, part statuses and
the targets of docs/benchmarks.md with their verdicts); `DIR/device_check.log` has every command and its
output; `DIR/parity-junit.xml` the test report. Nothing else is written to DIR (the device tool returns at
most 8 files). Exit status 0 when every part passed or was skipped for a stated reason (torch absent,
loader packages absent), 1 otherwise.

What travels to the device (`scripts/device_bundle.py` assembles it in `.device_bundle/`, carried as one
path): the fixtures the parity tests read (`shared/fixtures/...`), the user's EG3D clone (code only),
optional wheels. Found there by default; `--shared`, `--torch-eg3d`, `--wheels` override.

`--dry-run`: CPU, the tiny128 preset, one step row per stage (float32:highest for stage 2,
bfloat16:tf32 for stage 1), two steps per row, a one-test parity selection, the tiny128 precision report
at float32:tf32 and a small loader run: every code path of the real check, in minutes
(tests/benchmarks/test_device_check.py).
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Optional

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
BUNDLE = REPO / ".device_bundle"
PARTS = ("env", "parity", "steps", "render", "torch", "precision", "loader")
# Targets for one H200 (docs/benchmarks.md, "GPU").
BF16_STAGE2_TARGET_S = 0.025
MEMORY_TARGET_BYTES = 16 * 2**30
STAGE1_OVER_STAGE2 = (0.57, 0.77)  # "about 2/3"
PACKAGES = ("jax", "jaxlib", "jax-cuda12-plugin", "jax-cuda13-plugin", "jax-cuda13-pjrt", "flax", "optax",
            "orbax-checkpoint", "chex", "numpy", "torch", "ml-collections", "grain", "tensorflow-datasets",
            "array-record", "tensorboardX", "pytest")


@dataclasses.dataclass
class Plan:
    """What one run measures (`gpu_plan` or `dry_run_plan`)."""

    config: str
    batch: int
    steps: int
    step_rows: list            # (stage, compute dtype, precision)
    render_rows: list          # (compute dtype, precision)
    render_batches: str
    render_reps: int
    torch_rows: list           # (stage, sr 'fp16'|'float32', tf32 'off'|'on')
    torch_device: str
    parity_tests: list
    parity_select: str
    precision_generators: str
    precision_settings: str
    loader_args: list
    timeouts: dict             # part -> seconds (steps/render/torch: per row)


def gpu_plan() -> Plan:
    return Plan(
        config="ffhq512-128", batch=2, steps=20,
        step_rows=[(2, "float32", "highest"), (2, "bfloat16", "tf32"), (2, "float32", "tf32"),
                   (1, "float32", "highest"), (1, "bfloat16", "tf32"), (1, "float32", "tf32")],
        render_rows=[("float32", "highest"), ("bfloat16", "tf32")], render_batches="4", render_reps=10,
        torch_rows=[(2, "float32", "off"), (2, "fp16", "off"), (2, "float32", "on"), (1, "float32", "off"),
                    (1, "fp16", "off")],
        torch_device="cuda",
        parity_tests=["tests/eg3d_flax/test_generator_parity.py", "tests/hfagp/test_lpips.py"],
        parity_select="not vgg and not test_too_small_or_bad_inputs_raise",  # the VGG LPIPS fixtures do not travel
        precision_generators="tiny128,small512",
        precision_settings="float32:highest,float32:tf32,float32:default,bfloat16:highest",
        loader_args=["--frames", "100", "--batches", "200", "--workers", "0", "4"],
        timeouts={"env": 60, "parity": 180, "steps": 150, "render": 75, "torch": 90, "precision": 120,
                  "loader": 90, "torch_build": 240},
    )


def dry_run_plan() -> Plan:
    return Plan(
        config="tiny128", batch=2, steps=2,
        step_rows=[(2, "float32", "highest"), (1, "bfloat16", "tf32")],
        render_rows=[("float32", "highest")], render_batches="1", render_reps=1,
        torch_rows=[(2, "float32", "off")], torch_device="cpu",
        parity_tests=["tests/eg3d_flax/test_generator_parity.py"],
        parity_select="test_mapping_matches_reference and tiny128",
        precision_generators="tiny128", precision_settings="float32:tf32",
        loader_args=["--frames", "12", "--resolution", "64", "--batches", "5", "--warmup", "1", "--workers", "0"],
        # Generous: a CI machine may be busy, and the dry run checks code paths, not speed.
        timeouts={"env": 300, "parity": 900, "steps": 1200, "render": 900, "torch": 900, "precision": 1200,
                  "loader": 600, "torch_build": 300},
    )


class Runner:
    """Runs the parts' subprocesses under one time budget, logging everything to one file."""

    def __init__(self, out: Path, budget_s: float, env: dict, log_name: str = "device_check.log"):
        self.out, self.budget_s, self.env = out, budget_s, env
        self.t0 = time.monotonic()
        self.log_path = out / log_name
        self.log_path.write_text("")

    def remaining(self) -> float:
        return self.budget_s - (time.monotonic() - self.t0)

    def log(self, text: str) -> None:
        with open(self.log_path, "a") as f:
            f.write(text.rstrip("\n") + "\n")
        print(text, flush=True)

    def start(self, cmd: list, log_to: Optional[Path] = None, env: Optional[dict] = None) -> subprocess.Popen:
        """Starts `cmd` in its own process group, output appended to the log (or `log_to`)."""
        target = open(log_to or self.log_path, "a")
        try:
            return subprocess.Popen([str(c) for c in cmd], cwd=REPO, env=env or self.env, stdout=target,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            target.close()

    def run(self, label: str, cmd: list, timeout_s: float, env: Optional[dict] = None) -> dict:
        """Runs `cmd` for at most min(timeout_s, what is left); {'rc', 'seconds', 'timed_out', 'skipped'}."""
        limit = min(timeout_s, self.remaining())
        if limit < 5:
            self.log(f"## {label}: skipped, {max(self.remaining(), 0):.0f} s of the budget left")
            return {"rc": None, "seconds": 0.0, "timed_out": False, "skipped": "out of time"}
        self.log(f"## {label} (timeout {limit:.0f} s): {' '.join(str(c) for c in cmd)}")
        t = time.monotonic()
        proc = self.start(cmd, env=env)
        timed_out = False
        try:
            rc = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            kill_group(proc)
            rc, timed_out = proc.wait(), True
        seconds = round(time.monotonic() - t, 1)
        self.log(f"## {label}: {'TIMED OUT' if timed_out else f'exit {rc}'} after {seconds} s")
        return {"rc": rc, "seconds": seconds, "timed_out": timed_out, "skipped": None}


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def status_of(result: dict, ok: bool) -> str:
    if result.get("skipped"):
        return "skipped"
    if result.get("timed_out"):
        return "timeout"
    return "ok" if ok else "failed"


# ----------------------------------------------------------------------------------------------- env


def env_probe() -> dict:
    """Versions and devices, as the child processes will see them (run in a subprocess: it starts JAX)."""
    from importlib import metadata

    info = {"python": sys.version.split()[0], "executable": sys.executable, "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "packages": {}, "missing": []}
    for name in PACKAGES:
        try:
            info["packages"][name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            info["missing"].append(name)
    try:
        info["cpu_model"] = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                                 if ln.startswith("model name"))
    except (OSError, StopIteration):
        info["cpu_model"] = platform.processor()
    import jax

    info["jax_backend"] = jax.default_backend()
    info["jax_devices"] = [f"{d.platform}:{d.device_kind}" for d in jax.devices()]
    stats = jax.devices()[0].memory_stats() or {}
    info["jax_bytes_limit"] = stats.get("bytes_limit")
    return info


def nvidia_smi() -> Optional[dict]:
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.TimeoutExpired) as e:
        return {"error": str(e)}
    rows = [[v.strip() for v in ln.split(",")] for ln in out.strip().splitlines() if ln.strip()]
    return {"gpus": [dict(zip(("name", "driver", "memory_total", "max_sm_clock"), r)) for r in rows]}


# --------------------------------------------------------------------------------------------- check


class DeviceCheck:
    def __init__(self, args, plan: Plan):
        self.args, self.plan = args, plan
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.work = Path(tempfile.mkdtemp(prefix="hfagp-device-check-"))
        self.python = args.python
        self.torch_python = args.torch_python or args.python
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        if args.dry_run:
            env["JAX_PLATFORMS"] = "cpu"
        # One persistent compilation cache for every JAX child (the caller's, e.g. the tests', if set). On a
        # GPU it also keeps XLA's per-fusion autotuning results, so rows after the first reuse the cuDNN/GEMM
        # choices of the convolutions they share: their compile_s is warm, the first row's is cold.
        env.setdefault("JAX_COMPILATION_CACHE_DIR", str(self.work / "xla-cache"))
        self.shared = self.find_shared(args.shared)
        if self.shared:
            env["HFAGP_SHARED_DIR"] = str(self.shared)
        self.runner = Runner(self.out, args.budget, env)
        self.summary = {
            "mode": "dry-run (CPU, tiny configs: not a measurement)" if args.dry_run else "device",
            "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "budget_s": args.budget,
            "plan": dataclasses.asdict(plan), "shared_dir": str(self.shared) if self.shared else None,
            "compilation_cache": env["JAX_COMPILATION_CACHE_DIR"],
            "parts": {}, "environment": None, "parity": None, "steps": [], "render": [], "torch": [],
            "precision": [], "loader": None, "targets": [],
        }
        self.torch_build: Optional[subprocess.Popen] = None
        self.torch_build_log = self.work / "torch_build.log"

    @staticmethod
    def find_shared(explicit: Optional[str]) -> Optional[Path]:
        if explicit:
            return Path(explicit).resolve()
        if os.environ.get("HFAGP_SHARED_DIR"):
            return Path(os.environ["HFAGP_SHARED_DIR"]).resolve()
        if (BUNDLE / "shared" / "fixtures").is_dir():
            return BUNDLE / "shared"
        return None  # the tests' default (../shared beside the repository)

    def eg3d_path(self) -> Optional[str]:
        if self.args.torch_eg3d:
            return self.args.torch_eg3d
        return str(BUNDLE / "eg3d") if (BUNDLE / "eg3d").is_dir() else None

    def part(self, name: str, status: str, seconds: float, reason: Optional[str] = None) -> None:
        self.summary["parts"][name] = {"status": status, "seconds": round(seconds, 1), "reason": reason}
        self.runner.log(f"# part {name}: {status}" + (f" ({reason})" if reason else ""))
        self.write_summary()

    # -- parts

    def install_wheels(self) -> Optional[str]:
        """pip-installs the bundle's wheels into a folder on PYTHONPATH of every child (no network needed)."""
        wheels = Path(self.args.wheels) if self.args.wheels else BUNDLE / "wheels"
        found = sorted(wheels.glob("*.whl")) if wheels.is_dir() else []
        if not found:
            return None
        target = self.work / "site"
        proc = subprocess.run([self.python, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                               "--target", str(target), *map(str, found)], capture_output=True, text=True)
        self.runner.log(f"## wheels: {len(found)} from {wheels} -> {target}: exit {proc.returncode}\n{proc.stdout}"
                        f"{proc.stderr}")
        if proc.returncode == 0:
            self.runner.env["PYTHONPATH"] = os.pathsep.join(
                [str(target)] + ([self.runner.env["PYTHONPATH"]] if self.runner.env.get("PYTHONPATH") else []))
        return f"{len(found)} wheels, pip exit {proc.returncode}"

    def part_env(self) -> None:
        t = time.monotonic()
        wheels = self.install_wheels()
        out = self.work / "env.json"
        r = self.runner.run("env", [self.python, __file__, "--env-probe", str(out)], self.plan.timeouts["env"])
        info = read_json(out) or {}
        info["nvidia_smi"] = nvidia_smi()
        info["wheels"] = wheels
        self.summary["environment"] = info
        ok = r["rc"] == 0 and bool(info.get("jax_backend"))
        if ok and not self.args.dry_run and info.get("jax_backend") != "gpu":
            self.part("env", "failed", time.monotonic() - t, f"JAX runs on {info.get('jax_backend')}, not a GPU")
            return
        self.part("env", status_of(r, ok), time.monotonic() - t,
                  None if ok else "the environment probe failed (device_check.log has its output)")

    def start_torch_build(self) -> None:
        """Builds EG3D's CUDA kernels in the background (`torch_step.py --check`), overlapping the parity tests."""
        eg3d = self.eg3d_path()
        if eg3d is None or self.plan.torch_device != "cuda" or "torch" not in self.args.parts:
            return
        self.runner.log(f"## torch kernels: building in the background ({self.torch_build_log})")
        self.torch_build = self.runner.start([self.torch_python, HERE / "torch_step.py", eg3d, "--check", "--device",
                                              "cuda"], log_to=self.torch_build_log)
        self.torch_build_started = time.monotonic()

    def part_parity(self) -> None:
        t = time.monotonic()
        junit = self.out / "parity-junit.xml"
        env = dict(self.runner.env, HFAGP_REQUIRE_FIXTURES="1", HFAGP_TEST_OPTIMIZED="1")  # as XLA compiles for use
        cmd = [self.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}",
               *self.plan.parity_tests, "-k", self.plan.parity_select]
        r = self.runner.run("parity", cmd, self.plan.timeouts["parity"], env=env)
        counts = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0, "time_s": None}
        try:
            root = ET.parse(junit).getroot()
            suites = [root] if root.tag == "testsuite" else list(root)
            for s in suites:
                for k in ("tests", "failures", "errors", "skipped"):
                    counts[k] += int(s.get(k, 0))
                counts["time_s"] = round((counts["time_s"] or 0) + float(s.get("time", 0)), 1)
            counts["failed_tests"] = [f"{c.get('classname')}::{c.get('name')}" for c in root.iter("testcase")
                                      if c.find("failure") is not None or c.find("error") is not None]
        except (OSError, ET.ParseError):
            counts["report"] = "no junit report"
        counts["select"] = self.plan.parity_select
        self.summary["parity"] = counts
        ok = r["rc"] == 0 and counts["tests"] > 0 and counts["skipped"] == 0 and not counts["failures"] \
            and not counts["errors"]
        reason = None if ok else (f"{counts['failures']} failed, {counts['errors']} errors, {counts['skipped']} "
                                  f"skipped of {counts['tests']}")
        self.part("parity", status_of(r, ok), time.monotonic() - t, None if r.get("skipped") else reason)

    def part_steps(self) -> None:
        t, ok_all = time.monotonic(), True
        for stage, dtype, precision in self.plan.step_rows:
            out = self.work / f"step_{stage}_{dtype}_{precision}.json"
            cmd = [self.python, HERE / "step_throughput.py", "--configs", self.plan.config, "--stages", str(stage),
                   "--batch", str(self.plan.batch), "--steps", str(self.plan.steps), "--compute-dtype", dtype,
                   "--precision", precision, "--out", out]
            r = self.runner.run(f"steps stage {stage} {dtype}:{precision}", cmd, self.plan.timeouts["steps"])
            rows = read_json(out) or []
            row = rows[0] if rows else {"config": self.plan.config, "stage": stage, "compute_dtype": dtype,
                                        "precision": precision}
            row["status"] = status_of(r, r["rc"] == 0 and bool(rows))
            ok_all &= row["status"] == "ok"
            self.summary["steps"].append(row)
            self.write_summary()
        self.part("steps", "ok" if ok_all else "failed", time.monotonic() - t,
                  None if ok_all else "a row failed, timed out or had no time left")

    def part_render(self) -> None:
        t, ok_all = time.monotonic(), True
        for dtype, precision in self.plan.render_rows:
            out = self.work / f"render_{dtype}_{precision}.json"
            cmd = [self.python, HERE / "render_throughput.py", "--configs", self.plan.config, "--batches",
                   self.plan.render_batches, "--reps", str(self.plan.render_reps), "--dtype", dtype, "--precision",
                   precision, "--out", out]
            r = self.runner.run(f"render {dtype}:{precision}", cmd, self.plan.timeouts["render"])
            rows = read_json(out) or []
            for row in rows or [{"generator": self.plan.config, "compute_dtype": dtype, "precision": precision}]:
                row["status"] = status_of(r, r["rc"] == 0 and bool(rows))
                ok_all &= row["status"] == "ok"
                self.summary["render"].append(row)
            self.write_summary()
        self.part("render", "ok" if ok_all else "failed", time.monotonic() - t,
                  None if ok_all else "a row failed, timed out or had no time left")

    def torch_available(self) -> Optional[str]:
        """None when the PyTorch baseline can run, else why not (one line)."""
        eg3d = self.eg3d_path()
        if eg3d is None:
            return f"no EG3D clone (give --torch-eg3d, or put one in {BUNDLE / 'eg3d'}: scripts/device_bundle.py)"
        probe = subprocess.run([self.torch_python, "-c", "import torch"], capture_output=True, text=True)
        if probe.returncode != 0:
            return f"torch is not importable by {self.torch_python}"
        return None

    def part_torch(self) -> None:
        t = time.monotonic()
        reason = self.torch_available()
        if self.torch_build is not None:
            wait = max(0.0, min(self.plan.timeouts["torch_build"] - (time.monotonic() - self.torch_build_started),
                                self.runner.remaining() - 30))
            try:
                self.torch_build.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                kill_group(self.torch_build)
                self.torch_build.wait()
            text = self.torch_build_log.read_text() if self.torch_build_log.is_file() else ""
            self.runner.log(f"## torch kernels (background build): exit {self.torch_build.returncode}\n{text}")
            skip = [ln for ln in text.splitlines() if ln.startswith("skipped: ")]
            if skip and reason is None:
                reason = skip[-1][len("skipped: "):]
        if reason is not None:
            self.runner.log(f"PyTorch baseline: skipped: {reason}")
            self.part("torch", "skipped", time.monotonic() - t, reason)
            return
        sys.path.insert(0, str(HERE))
        sys.path.insert(0, str(REPO))
        from step_throughput import torch_spec

        spec_file = self.work / "torch_spec.json"
        spec_file.write_text(json.dumps(torch_spec(self.plan.config, self.plan.batch)))
        ok_all = True
        for stage, sr, tf32 in self.plan.torch_rows:
            out = self.work / f"torch_{stage}_{sr}_{tf32}.json"
            cmd = [self.torch_python, HERE / "torch_step.py", self.eg3d_path(), "--spec", spec_file, "--batch",
                   str(self.plan.batch), "--stage", str(stage), "--steps", str(self.plan.steps), "--device",
                   self.plan.torch_device, "--tf32", tf32, "--sr", sr, "--json", out]
            r = self.runner.run(f"torch stage {stage} sr={sr} tf32={tf32}", cmd, self.plan.timeouts["torch"])
            row = read_json(out) or {"config": self.plan.config, "stage": stage}
            row.update(requested_sr=sr, requested_tf32=tf32, status=status_of(r, r["rc"] == 0 and out.is_file()))
            ok_all &= row["status"] == "ok"
            self.summary["torch"].append(row)
            self.write_summary()
        self.part("torch", "ok" if ok_all else "failed", time.monotonic() - t,
                  None if ok_all else "a row failed, timed out or had no time left")

    def part_precision(self) -> None:
        t = time.monotonic()
        out = self.work / "precision.json"
        cmd = [self.python, HERE / "precision_report.py", "--generators", self.plan.precision_generators,
               "--settings", self.plan.precision_settings, "--out", out]
        if self.shared:
            cmd += ["--fixtures", self.shared / "fixtures"]
        r = self.runner.run("precision", cmd, self.plan.timeouts["precision"])
        rows = read_json(out) or []
        self.summary["precision"] = rows
        expected = len(self.plan.precision_generators.split(",")) * len(self.plan.precision_settings.split(","))
        self.part("precision", status_of(r, r["rc"] == 0 and len(rows) == expected), time.monotonic() - t)

    def part_loader(self) -> None:
        t = time.monotonic()
        probe = subprocess.run([self.python, "-c", "import grain, tensorflow_datasets"], capture_output=True,
                               text=True, env=self.runner.env, cwd=REPO)
        if probe.returncode != 0:
            last = (probe.stderr.strip().splitlines() or ["?"])[-1]
            self.part("loader", "skipped", time.monotonic() - t, f"the input pipeline's packages are missing ({last})")
            return
        out = self.work / "loader.json"
        r = self.runner.run("loader", [self.python, HERE / "loader_throughput.py", *self.plan.loader_args, "--out",
                                       out], self.plan.timeouts["loader"])
        self.summary["loader"] = read_json(out)
        self.part("loader", status_of(r, r["rc"] == 0 and self.summary["loader"] is not None), time.monotonic() - t)

    # -- summary

    def write_summary(self) -> None:
        self.summary["targets"] = targets(self.summary, self.plan)
        self.summary["elapsed_s"] = round(time.monotonic() - self.runner.t0, 1)
        tmp = self.out / "summary.json.tmp"
        tmp.write_text(json.dumps(self.summary, indent=2, default=str) + "\n")
        os.replace(tmp, self.out / "summary.json")
        tmp = self.out / "summary.md.tmp"
        tmp.write_text(markdown(self.summary))
        os.replace(tmp, self.out / "summary.md")

    def run(self) -> int:
        handlers = {"env": self.part_env, "parity": self.part_parity, "steps": self.part_steps,
                    "render": self.part_render, "torch": self.part_torch, "precision": self.part_precision,
                    "loader": self.part_loader}
        self.runner.log(f"# device check ({self.summary['mode']}), budget {self.args.budget:.0f} s, out {self.out}")
        try:
            for name in self.args.parts:
                env = self.summary["parts"].get("env", {})
                if env and env.get("status") != "ok" and not self.args.dry_run:
                    self.part(name, "skipped", 0.0, f"no GPU for JAX ({env.get('reason')})")
                    continue
                if self.runner.remaining() < 5:
                    self.part(name, "skipped", 0.0, "out of time")
                    continue
                handlers[name]()
                if name == "env":
                    self.start_torch_build()
        finally:
            if self.torch_build is not None and self.torch_build.poll() is None:
                kill_group(self.torch_build)
            self.write_summary()
            shutil.rmtree(self.work, ignore_errors=True)
        print("\n" + (self.out / "summary.md").read_text())
        bad = [n for n, p in self.summary["parts"].items() if p["status"] not in ("ok", "skipped")
               or (p["status"] == "skipped" and n not in ("torch", "loader"))]
        return 1 if bad else 0


# -------------------------------------------------------------------------------------- targets, table


def _find(rows: list, **match) -> Optional[dict]:
    for r in rows:
        if all(r.get(k) == v for k, v in match.items()) and r.get("status") == "ok":
            return r
    return None


def _step_s(row: Optional[dict]) -> Optional[float]:
    """A JAX row's training-loop time per step: the pipelined figure where measured, else the median."""
    if not row:
        return None
    return row.get("step_s_pipelined") or row.get("step_s_median")


def torch_counterpart(summary: dict, row: dict) -> Optional[dict]:
    """The PyTorch row of the same stage and precision as a JAX step row."""
    if row.get("compute_dtype") == "bfloat16":
        match = {"requested_sr": "fp16", "requested_tf32": "off"}
    else:
        match = {"requested_sr": "float32", "requested_tf32": "off" if row.get("precision") == "highest" else "on"}
    return _find(summary["torch"], stage=row.get("stage"), **match)


def targets(summary: dict, plan: Plan) -> list[dict]:
    """The documented GPU targets with the measured values and a verdict ('met' / 'NOT met' / 'not measured')."""
    out = []

    def add(name, value, met):
        out.append({"target": name, "value": value,
                    "verdict": "not measured" if met is None else ("met" if met else "NOT met")})

    parity = summary.get("parity")
    add("parity tests pass on the device at 'highest' with zero skips",
        None if not parity else f"{parity['tests']} tests, {parity['failures']} failed, {parity['errors']} errors, "
                                f"{parity['skipped']} skipped",
        None if not parity or not parity["tests"] else summary["parts"].get("parity", {}).get("status") == "ok")
    steps = summary["steps"]
    f32 = _find(steps, stage=2, compute_dtype="float32", precision="highest")
    t = torch_counterpart(summary, f32) if f32 else None
    if f32 and t and t.get("step_s_median"):
        ratio = t["step_s_median"] / f32["step_s_median"]
        add(f"{plan.config} stage 2 float32 ('highest') at least as fast as PyTorch float32 TF32-off "
            f"(CUDA kernels: {t.get('cuda_kernels', 'n/a')})",
            f"JAX {f32['step_s_median'] * 1e3:.1f} ms, PyTorch {t['step_s_median'] * 1e3:.1f} ms: {ratio:.2f}x",
            ratio >= 1.0)
    else:
        add(f"{plan.config} stage 2 float32 ('highest') at least as fast as PyTorch float32 TF32-off", None, None)
    bf16 = _find(steps, stage=2, compute_dtype="bfloat16")
    add(f"{plan.config} stage 2 bfloat16 at most {BF16_STAGE2_TARGET_S * 1e3:.0f} ms/step",
        None if not bf16 else f"{_step_s(bf16) * 1e3:.1f} ms (median {bf16['step_s_median'] * 1e3:.1f} ms)",
        None if not bf16 else _step_s(bf16) <= BF16_STAGE2_TARGET_S)
    ratios = []
    for r1 in (r for r in steps if r.get("stage") == 1 and r.get("status") == "ok"):
        r2 = _find(steps, stage=2, compute_dtype=r1["compute_dtype"], precision=r1["precision"])
        if r2:
            ratios.append((f"{r1['compute_dtype']}:{r1['precision']}", _step_s(r1) / _step_s(r2)))
    add("stage 1 about 2/3 of stage 2", "; ".join(f"{k} {v:.2f}" for k, v in ratios) or None,
        all(STAGE1_OVER_STAGE2[0] <= v <= STAGE1_OVER_STAGE2[1] for _, v in ratios) if ratios else None)
    peaks = [r.get("device_peak_bytes") for r in steps if r.get("stage") == 2 and r.get("status") == "ok"
             and r.get("device_peak_bytes")]
    add(f"peak device memory within {MEMORY_TARGET_BYTES / 2**30:.0f} GiB at batch {plan.batch} (stage 2)",
        None if not peaks else f"{max(peaks) / 2**30:.2f} GiB", None if not peaks else max(peaks) <= MEMORY_TARGET_BYTES)
    timed = [r for r in steps if r.get("status") == "ok" and r.get("recompiled_after_first_step") is not None]
    add("no recompilation after the first step", f"{len(timed)} rows checked" if timed else None,
        None if not timed else not any(r["recompiled_after_first_step"] for r in timed))
    fastest = min((_step_s(r) for r in steps if r.get("status") == "ok" and _step_s(r)), default=None)
    need = plan.batch / fastest if fastest else None
    loader = summary.get("loader")
    have = max((v for k, v in (loader or {}).items() if k.startswith("frames_per_s_workers")), default=None)
    add("input pipeline never the bottleneck",
        (f"needs {need:.0f} frames/s" if need else "need unknown") + (f", loader {have:.0f} frames/s" if have else
                                                                       ", loader not measured"),
        None if not (need and have) else have >= need)
    return out


def _ms(v) -> str:
    return "—" if v is None else f"{v * 1e3:.1f}"


def _gib(v) -> str:
    return "—" if not v else f"{v / 2**30:.2f}"


def markdown(s: dict) -> str:
    env = s.get("environment") or {}
    gpus = ((env.get("nvidia_smi") or {}).get("gpus") or [{}])
    pk = env.get("packages", {})
    lines = [f"# Device check: {s['mode']}", "",
             f"Started {s['started']}, {s.get('elapsed_s', 0):.0f} s of a {s['budget_s']:.0f} s budget. "
             f"GPU: {gpus[0].get('name', '—')} (driver {gpus[0].get('driver', '—')}, {gpus[0].get('memory_total', '—')}); "
             f"JAX {pk.get('jax', '—')} on {env.get('jax_backend', '—')} {env.get('jax_devices', '')}; "
             f"flax {pk.get('flax', '—')}, optax {pk.get('optax', '—')}, torch {pk.get('torch', '—')}; "
             f"Python {env.get('python', '—')}; {env.get('cpu_count', '—')} CPUs. Missing: "
             f"{', '.join(env.get('missing', [])) or 'none'}.", "",
             "| part | status | seconds | note |", "| --- | --- | --- | --- |"]
    for name, p in s["parts"].items():
        lines.append(f"| {name} | {p['status']} | {p['seconds']} | {p.get('reason') or ''} |")
    lines += ["", "## Targets", "", "| target | measured | verdict |", "| --- | --- | --- |"]
    lines += [f"| {t['target']} | {t['value'] or '—'} | {t['verdict']} |" for t in s["targets"]]
    lines += ["", "## Training step (batch %d)" % s["plan"]["batch"], "",
              "| config | stage | dtype | precision | kernels | compile s | step ms (median) | min-max | pipelined ms "
              "| peak device GiB | recompiled | PyTorch ms (same precision) | torch/jax | status |",
              "| --- " * 14 + "|"]
    for r in s["steps"]:
        t = torch_counterpart(s, r) if r.get("status") == "ok" else None
        ratio = t["step_s_median"] / r["step_s_median"] if t and t.get("step_s_median") and r.get("step_s_median") \
            else None
        rec = r.get("recompiled_after_first_step")
        lines.append(
            f"| {r.get('config')} | {r.get('stage')} | {r.get('compute_dtype')} | {r.get('precision')} | "
            f"{r.get('conv_impl', '?')}/{r.get('upconv_impl', '?')} | {r.get('compile_s', '—')} | "
            f"{_ms(r.get('step_s_median'))} | {_ms(r.get('step_s_min'))}-{_ms(r.get('step_s_max'))} | "
            f"{_ms(r.get('step_s_pipelined'))} | {_gib(r.get('device_peak_bytes'))} | "
            f"{'—' if rec is None else ('YES' if rec else 'no')} | {_ms(t and t.get('step_s_median'))} | "
            f"{'—' if ratio is None else f'{ratio:.2f}x'} | {r.get('status')} |")
    lines += ["", "## PyTorch (official EG3D)", "",
              "| stage | SR blocks | TF32 | device | CUDA kernels | step ms (median) | min-max | max allocated GiB "
              "| status |", "| --- " * 9 + "|"]
    for r in s["torch"]:
        lines.append(
            f"| {r.get('stage')} | {r.get('sr_dtype', r.get('requested_sr'))} | {r.get('requested_tf32')} | "
            f"{r.get('device', '—')} | {r.get('cuda_kernels', '—')} | {_ms(r.get('step_s_median'))} | "
            f"{_ms(r.get('step_s_min'))}-{_ms(r.get('step_s_max'))} | "
            f"{_gib(r.get('cuda_max_memory_allocated_bytes'))} | {r.get('status')} |")
    lines += ["", "## Rendering", "", "| generator | dtype | precision | batch | compile s | ms/batch | images/s "
              "| peak device GiB | recompiled | status |", "| --- " * 10 + "|"]
    for r in s["render"]:
        lines.append(
            f"| {r.get('generator')} | {r.get('compute_dtype')} | {r.get('precision')} | {r.get('batch', '—')} | "
            f"{r.get('compile_s', '—')} | {_ms(r.get('batch_s_median'))} | {r.get('images_per_s', '—')} | "
            f"{_gib(r.get('device_peak_bytes'))} | {r.get('recompiled', '—')} | {r.get('status')} |")
    lines += ["", "## Precision against the PyTorch fixtures", "",
              "| generator | dtype | precision | image max-abs vs torch | grad ws rel-L2 | grad params max rel-L2 "
              "| image max-abs vs first | within parity tolerance |", "| --- " * 8 + "|"]
    for r in s["precision"]:
        first = r.get("image_max_abs_vs_first")
        lines.append(
            f"| {r['generator']} | {r['compute_dtype']} | {r['precision']} | {r['image_max_abs_vs_torch']:.2e} | "
            f"{r['grad_ws_rel_l2_vs_torch']:.2e} | {r['grad_params_max_rel_l2_vs_torch']:.2e} | "
            f"{'—' if first is None else f'{first:.2e}'} | {'yes' if r['within_parity_tolerance'] else 'NO'} |")
    if s.get("parity"):
        p = s["parity"]
        lines += ["", f"Parity: {p['tests']} tests ({p['select']}), {p['failures']} failed, {p['errors']} errors, "
                      f"{p['skipped']} skipped, {p.get('time_s')} s."]
    if s.get("loader"):
        lines += ["", f"Loader: {json.dumps(s['loader'])}"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------- main


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", help="folder for summary.json, summary.md, device_check.log, parity-junit.xml")
    p.add_argument("--dry-run", action="store_true", help="CPU, tiny configs (CI): every code path, not a measurement")
    p.add_argument("--budget", type=float, default=None, help="seconds for the whole check (default 480; dry run 3600)")
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, in order (default: {','.join(PARTS)})")
    p.add_argument("--python", default=sys.executable, help="interpreter of the JAX parts")
    p.add_argument("--torch-python", default=None, help="interpreter with torch (default: --python)")
    p.add_argument("--torch-eg3d", default=None, help="clone of NVlabs/eg3d (default: .device_bundle/eg3d)")
    p.add_argument("--shared", default=None, help="folder holding fixtures/ (default: $HFAGP_SHARED_DIR, "
                                                  ".device_bundle/shared, ../shared)")
    p.add_argument("--wheels", default=None, help="folder of wheels to install first (default: .device_bundle/wheels)")
    p.add_argument("--env-probe", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.env_probe:
        Path(args.env_probe).write_text(json.dumps(env_probe(), indent=2))
        return 0
    if not args.out:
        p.error("--out DIR is required")
    args.parts = [x for x in args.parts.split(",") if x]
    unknown = sorted(set(args.parts) - set(PARTS))
    if unknown:
        p.error(f"--parts: unknown {unknown}; known: {', '.join(PARTS)}")
    if args.budget is not None and not args.budget > 0:
        p.error(f"--budget must be a positive number of seconds, got {args.budget}")
    if args.budget is None:
        args.budget = 3600.0 if args.dry_run else 480.0
    plan = dry_run_plan() if args.dry_run else gpu_plan()
    if importlib.util.find_spec("jax") is None and args.python == sys.executable:
        p.error(f"{sys.executable} cannot import jax; give --python")
    return DeviceCheck(args, plan).run()


if __name__ == "__main__":
    sys.exit(main())
