"""GPU check: fractional-GPU trials on Ray, torch AMP, TensorFlow memory growth, per-trial GPU memory.

    python -m benchmarks.gpu [--trials 8] [--epochs 6] [--rows 32768] [--json PATH]
    python -m benchmarks.gpu --smoke    # no GPU needed: tiny sizes, Ray given one logical GPU

Sections (each runs on its own; one that fails is reported and the next runs):

1. **torch AMP**: one ``tune()`` trial in this process on CUDA with a user's ``nn.Module`` subclass
   that notes the dtype of its hidden activations while training (bfloat16 or float16: autocast is
   on), its peak ``torch.cuda.max_memory_allocated``, and the finished trial's validation accuracy.
   Beside it, the same net in a plain loop: ms per step in float32 and under bfloat16 autocast.
2. **Fractional GPUs on Ray**: the same ``--trials`` identical trials (a searched L2 in a range too
   small to change the cost, no early stopping, no pruning) with ``{"gpu": 1}`` one at a time, then
   ``{"gpu": 0.25}`` four at a time. Throughput is trials per minute from the first trial's start to
   the study's end; per-trial memory is the largest ``nvidia-smi`` reading of each worker process
   (CUDA context included) and torch's own peak inside the trial.
3. **TensorFlow memory growth**: in a Ray task holding 0.25 GPU, the worker's own environment and
   ``limit_gpu_memory`` as a trial gets them, then a Keras fit; reports whether memory growth is on
   and TensorFlow's peak memory. Skipped with the reason where TensorFlow is not installed.

Target: the whole script under 5 minutes on one GPU. Output: a Markdown table on stdout, the raw
figures in ``--json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from benchmarks.ray_overhead import SPACE as RAY_SPACE

# every trial alike, as in the Ray overhead benchmark, with GPU-sized batches
SPACE = {"knobs": {**RAY_SPACE["knobs"], "batch_size": 128}}


def make_images(n: int, side: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` 3-channel images of 10 classes, each class a faint 4x4-block pattern under pixel noise."""
    rng = np.random.default_rng(seed)
    blocks = rng.normal(size=(10, 3, 4, 4)).astype(np.float32)
    patterns = np.kron(blocks, np.ones((side // 4, side // 4), dtype=np.float32))
    y = rng.integers(0, 10, size=n)
    X = 0.2 * patterns[y] + rng.normal(size=(n, 3, side, side)).astype(np.float32)
    return X.astype(np.float32), y


def build_net(notes: str, width: int, side: int) -> Any:
    """A user-style ``nn.Module`` subclass that appends, every 50 training steps, its process, the
    dtype of its hidden activations, its device and torch's peak GPU memory to the file ``notes``."""
    import torch
    from torch import nn

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, width, 3, padding=1)
            self.conv2 = nn.Conv2d(width, 2 * width, 3, padding=1)
            self.pool = nn.Sequential(nn.MaxPool2d(2), nn.AdaptiveAvgPool2d(4))
            self.drop = nn.Dropout(0.1)
            self.fc1 = nn.Linear(2 * width * 16, 256)
            self.fc2 = nn.Linear(256, 10)
            self.steps = 0
            self.tag = f"{os.getpid()}-{time.time_ns()}"

        def forward(self, x: Any) -> Any:
            h = self.pool(torch.relu(self.conv2(torch.relu(self.conv1(x)))))
            h = torch.relu(self.fc1(self.drop(h.flatten(1))))
            if self.training:
                self.steps += 1
                if self.steps % 50 == 1:
                    peak = torch.cuda.max_memory_allocated() if h.is_cuda else 0
                    with open(notes, "a") as f:
                        f.write(f"{self.tag} {h.dtype} {h.device} {peak}\n")
            return self.fc2(h)

    return Net()


def read_notes(path: Path) -> dict[str, dict[str, Any]]:
    """Per built model: the activation dtypes seen, the device, torch's peak GPU memory in MiB."""
    out: dict[str, dict[str, Any]] = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        tag, dtype, device, peak = line.split()
        row = out.setdefault(tag, {"dtypes": set(), "device": device, "peak_mib": 0.0})
        row["dtypes"].add(dtype.replace("torch.", ""))
        row["peak_mib"] = max(row["peak_mib"], int(peak) / 2**20)
    return out


class SmiPoller:
    """Samples ``nvidia-smi``'s per-process GPU memory every ``every`` seconds while running."""

    def __init__(self, every: float = 0.5) -> None:
        self.every, self.peak_by_pid, self.peak_total = every, {}, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        cmd = ["nvidia-smi", "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"]
        while not self._stop.is_set():
            try:
                text = subprocess.run(cmd, capture_output=True, text=True, timeout=5).stdout
            except (OSError, subprocess.SubprocessError):
                return
            total = 0.0
            for line in text.strip().splitlines():
                pid, mib = (part.strip() for part in line.split(","))
                if mib.isdigit():
                    self.peak_by_pid[pid] = max(self.peak_by_pid.get(pid, 0.0), float(mib))
                    total += float(mib)
            self.peak_total = max(self.peak_total, total)
            self._stop.wait(self.every)

    def __enter__(self) -> SmiPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def environment() -> dict[str, Any]:
    import torch

    env: dict[str, Any] = {"torch": torch.__version__, "cuda": torch.version.cuda, "gpus": []}
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        env["gpus"].append({"name": p.name, "memory_gib": round(p.total_memory / 2**30, 1)})
    if torch.cuda.is_available():
        env["bf16"] = torch.cuda.is_bf16_supported()
    for name in ("ray", "tensorflow", "optuna"):
        try:
            env[name] = __import__(name).__version__
        except ImportError:
            env[name] = None
    return env


def plain_loop(data: Any, width: int, side: int, amp: bool, epochs: int = 2) -> dict[str, float]:
    """The same net in a hand-written AdamW loop (batch 128) on 80 % of ``data``, float32 or bf16
    autocast: ms per step (after 20 warm-up steps) and accuracy on the other 20 %."""
    import torch

    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    net = build_net(os.devnull, width, side).to(dev)
    opt = torch.optim.AdamW(net.parameters(), 1e-3)
    X, y = torch.as_tensor(data[0], device=dev), torch.as_tensor(data[1], device=dev)
    cut = int(0.8 * len(y))
    use_amp = amp and dev.type == "cuda"
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    step, t0 = 0, time.perf_counter()
    for _ in range(epochs):
        for idx in torch.randperm(cut, device=dev).split(128):
            if step == 20:
                sync()
                t0 = time.perf_counter()
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_amp):
                loss = torch.nn.functional.cross_entropy(net(X[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
    sync()
    ms = (time.perf_counter() - t0) / max(step - 20, 1) * 1000
    net.eval()
    with torch.no_grad(), torch.autocast(dev.type, dtype=torch.bfloat16, enabled=use_amp):
        hits = sum(
            int((net(X[i : i + 512]).argmax(1) == y[i : i + 512]).sum()) for i in range(cut, len(y), 512)
        )
    return {"ms_per_step": ms, "accuracy": hits / (len(y) - cut), "last_loss": float(loss.detach())}


def torch_amp(args: argparse.Namespace, data: Any, tmp: Path) -> dict[str, Any]:
    from functools import partial

    from tuner import tune

    notes = tmp / "amp.notes"
    t0 = time.perf_counter()
    result = tune(partial(build_net, str(notes), args.width, args.side), data, space=SPACE, n_trials=1,
                  max_epochs=args.epochs, tracking=False, progress=False, baselines=False, test=None,
                  metrics=["accuracy"], storage=str(tmp / "amp.db"), study_name="amp")  # fmt: skip
    wall = time.perf_counter() - t0
    trained = [row for row in read_notes(notes).values() if row["dtypes"]]
    record = result.records[0]
    return {
        "autocast_dtypes": sorted(set().union(*(r["dtypes"] for r in trained))) if trained else [],
        "device": trained[0]["device"] if trained else None,
        "peak_mib": max((r["peak_mib"] for r in trained), default=0.0),
        "val_accuracy": record.best_metrics.get("val_accuracy"),
        "curve": [{k: round(v, 4) for k, v in e.items() if k in ("loss", "val_loss")} for e in record.epochs],
        "state": str(record.state),
        "tune_wall_s": wall,
        "plain_fp32": plain_loop(data, args.width, args.side, amp=False),
        "plain_bf16": plain_loop(data, args.width, args.side, amp=True),
    }


def ray_study(args: argparse.Namespace, data: Any, tmp: Path, name: str, gpu: float, concurrent: int) -> dict:
    from functools import partial

    from tuner import RayExecutor, tune

    notes = tmp / f"{name}.notes"
    executor = RayExecutor(resources_per_trial={"cpu": 2, "gpu": gpu}, max_concurrent_trials=concurrent)
    with SmiPoller() as smi:
        t0 = time.time()
        builder = partial(build_net, str(notes), args.width, args.side)
        result = tune(builder, data, space=SPACE, n_trials=args.trials, max_epochs=args.epochs,
                      executor=executor, tracking=False, progress=False, baselines=False, test=None,
                      storage=str(tmp / "ray.db"), study_name=name)  # fmt: skip
        end = time.time()
    per_model = [r for r in read_notes(notes).values() if r["dtypes"]]
    starts = sorted(int(tag.split("-")[1]) / 1e9 for tag in read_notes(notes))
    first = starts[0] if starts else t0
    done = sum(1 for r in result.records if str(r.state) == "complete")
    workers = {pid: mib for pid, mib in smi.peak_by_pid.items() if pid != str(os.getpid())}
    return {
        "gpu_per_trial": gpu,
        "concurrent": concurrent,
        "completed": done,
        "trials_per_min": 60 * done / max(end - first, 1e-9),
        "wall_s": end - t0,
        "devices": sorted({r["device"] for r in per_model}),
        "autocast_dtypes": sorted(set().union(*(r["dtypes"] for r in per_model))) if per_model else [],
        "torch_peak_mib_per_trial": max((r["peak_mib"] for r in per_model), default=0.0),
        "smi_peak_mib_per_worker": max(workers.values(), default=None),
        "smi_peak_mib_all_workers": smi.peak_total or None,
        "smi_workers_seen": len(workers),
    }


def tf_memory_growth() -> dict[str, Any]:
    try:
        import tensorflow  # noqa: F401
    except ImportError as exc:
        return {"skipped": f"TensorFlow is not installed here ({exc})"}
    import ray

    @ray.remote(num_gpus=0.25, num_cpus=2)
    def probe() -> dict[str, Any]:
        from tuner.executors.ray.worker import _apply_env, limit_gpu_memory, worker_env

        _apply_env(worker_env(2, 0.25))
        import keras
        import tensorflow as tf

        model = keras.Sequential([keras.Input((32,)), keras.layers.Dense(256, activation="relu"),
                                  keras.layers.Dense(10)])  # fmt: skip
        done = limit_gpu_memory(0.25)
        model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        gpus = tf.config.list_physical_devices("GPU")
        X = np.random.default_rng(0).normal(size=(4096, 32)).astype("float32")
        model.fit(X, np.arange(4096) % 10, epochs=1, verbose=0)
        peak = tf.config.experimental.get_memory_info("GPU:0")["peak"] / 2**20 if gpus else None
        growth = [tf.config.experimental.get_memory_growth(g) for g in gpus]
        return {"gpus": [g.name for g in gpus], "done": done, "growth": growth, "peak_mib": peak}

    return ray.get(probe.remote(), timeout=300)


def section(out: dict[str, Any], key: str, fn: Any, *fn_args: Any) -> None:
    t0 = time.perf_counter()
    try:
        out[key] = fn(*fn_args)
    except Exception as exc:  # one section's failure is a finding, not the end of the check
        out[key] = {"error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc(limit=6)}
    out[key]["section_s"] = round(time.perf_counter() - t0, 1)
    print(f"## {key}\n{json.dumps(out[key], indent=1, default=str)}", flush=True)


def table(out: dict[str, Any]) -> str:
    amp, one, four = out.get("torch_amp", {}), out.get("ray_gpu_1", {}), out.get("ray_gpu_0.25", {})
    ratio = (four.get("trials_per_min") or 0) / (one.get("trials_per_min") or float("nan"))
    tf = out.get("tf_memory_growth", {})
    fp32, bf16 = amp.get("plain_fp32", {}), amp.get("plain_bf16", {})
    gpu = out["environment"]["gpus"][0]["name"] if out["environment"]["gpus"] else "no GPU (smoke)"

    def f(v: Any, spec: str = ".1f") -> str:
        return format(v, spec) if isinstance(v, (int, float)) else str(v)

    rows = [
        ("GPU", gpu),
        ("torch AMP: hidden activations while training", ", ".join(amp.get("autocast_dtypes", [])) or "-"),
        ("torch AMP: trial's validation accuracy (10 classes)", f(amp.get("val_accuracy"), ".3f")),
        ("plain loop, ms/step float32 / bf16 autocast",
         f"{f(fp32.get('ms_per_step'), '.2f')} / {f(bf16.get('ms_per_step'), '.2f')}"),
        ("plain loop, held-out accuracy float32 / bf16 autocast",
         f"{f(fp32.get('accuracy'), '.3f')} / {f(bf16.get('accuracy'), '.3f')}"),
        ("Ray, 1 GPU per trial, 1 at a time: trials/min", f(one.get("trials_per_min"))),
        ("Ray, 0.25 GPU per trial, 4 at a time: trials/min", f(four.get("trials_per_min"))),
        ("**4 trials per GPU vs 1: throughput**", f"**{ratio:.2f}x**"),
        ("per-trial GPU memory, torch peak (MiB)", f(four.get("torch_peak_mib_per_trial"), ".0f")),
        ("per-worker GPU memory, nvidia-smi, CUDA context included (MiB)",
         f(four.get("smi_peak_mib_per_worker"), ".0f")),
        ("4 workers together, nvidia-smi (MiB)", f(four.get("smi_peak_mib_all_workers"), ".0f")),
        ("TensorFlow memory growth", "not run" if not tf else tf.get("skipped") or tf.get("error") or
         f"{tf.get('growth')} ({tf.get('done')}); peak {f(tf.get('peak_mib'), '.0f')} MiB"),
    ]  # fmt: skip
    return "| figure | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--trials", type=int, default=8)
    p.add_argument("--epochs", type=int, default=6)
    p.add_argument("--rows", type=int, default=32768)
    p.add_argument("--side", type=int, default=32, help="image side in pixels")
    p.add_argument("--width", type=int, default=64, help="channels of the first conv layer")
    p.add_argument("--smoke", action="store_true", help="tiny sizes; Ray gets a logical GPU (no GPU needed)")
    p.add_argument("--sections", default="amp,ray,tf", help="comma-separated: amp, ray, tf")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    wanted = set(args.sections.split(","))
    if args.smoke:
        args.trials, args.epochs, args.rows, args.side, args.width = 4, 2, 512, 32, 4
    import torch

    out: dict[str, Any] = {"environment": environment(), "args": vars(args) | {"json": str(args.json)}}
    print(json.dumps(out, indent=1), flush=True)
    if not torch.cuda.is_available() and not args.smoke:
        raise SystemExit("torch sees no CUDA GPU: run on a GPU machine, or pass --smoke to check plumbing")
    data = make_images(args.rows, args.side)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gpu-bench-") as folder:
        tmp = Path(folder)
        if "amp" in wanted:
            section(out, "torch_amp", torch_amp, args, data, tmp)
        if not wanted & {"ray", "tf"}:
            return finish(out, args, t0)
        import ray

        ray.init(num_cpus=min(16, os.cpu_count() or 2) if not args.smoke else 8, num_gpus=1,
                 include_dashboard=False, logging_level=logging.WARNING)  # fmt: skip
        try:
            if "ray" in wanted:
                section(out, "ray_gpu_1", ray_study, args, data, tmp, "gpu1", 1.0, 1)
                section(out, "ray_gpu_0.25", ray_study, args, data, tmp, "gpu025", 0.25, 4)
            if "tf" in wanted:
                section(out, "tf_memory_growth", tf_memory_growth)
        finally:
            ray.shutdown()
    return finish(out, args, t0)


def finish(out: dict[str, Any], args: argparse.Namespace, t0: float) -> dict[str, Any]:
    out["total_s"] = round(time.perf_counter() - t0, 1)
    print(f"\n{args.trials} trials x {args.epochs} epochs, {args.rows} images {args.side}x{args.side}, "
          f"total {out['total_s']} s\n{table(out)}")  # fmt: skip
    if args.json:
        args.json.write_text(json.dumps(out, indent=2, default=str))
    return out


if __name__ == "__main__":
    main()
