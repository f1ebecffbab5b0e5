"""The programs of the ``numpy`` workload variant, shipped in a ConfigMap like those of ``workload_scripts`` and run by
``python3`` (3.11) of image ``aiso.local/numpy-workload:1``: Debian bookworm's python3 and python3-numpy, no
TensorFlow.

Only the trainer differs: data-processor and model-monitor already need nothing beyond numpy and the standard
library, so the variant runs the very programs of the ``tensorflow`` one (and its data-processor redoes its work on
every start, as there). The trainer does the TensorFlow trainer's job with numpy alone: the same synthetic task and
network, a checkpoint per epoch, resumed on start."""

from __future__ import annotations

from ai_storage_orchestrator.compare.workload_scripts import DATA_PROCESSOR, MODEL_MONITOR

TRAINER = '''"""tensorflow-trainer (numpy variant): trains a small neural network on synthetic data with numpy alone,
without end.

The TensorFlow trainer's task: 32 features, targets tanh(x . w) + noise, a 128-64-1 ReLU network trained with Adam on
the mean squared error in batches of 256. After every epoch (one pass over $TRAIN_SAMPLES samples) it saves the
weights and the optimiser state to $DATA_DIR/checkpoints/epoch-NNNNNN.npz (written beside it, then renamed; the newest
$KEEP_CHECKPOINTS are kept) and its metrics to $DATA_DIR/metrics/trainer.json. On start it resumes from the newest
checkpoint that reads back, so a pod recreated on another node continues where the old one stopped. With $EPOCHS
set (default 0: without end) it exits 0 once that many epochs are done."""
import json
import os
import re
import signal
import sys
import time

import numpy as np

DATA_DIR = os.environ.get("DATA_DIR", "/data")
CHECKPOINTS = os.path.join(DATA_DIR, "checkpoints")
METRICS = os.path.join(DATA_DIR, "metrics", "trainer.json")
KEEP = max(1, int(os.environ.get("KEEP_CHECKPOINTS", "3")))
SAMPLES = int(os.environ.get("TRAIN_SAMPLES", "200000"))
EPOCHS = int(os.environ.get("EPOCHS", "0"))
FEATURES = 32
LAYERS = (FEATURES, 128, 64, 1)
BATCH = 256
RATE, BETA1, BETA2, EPSILON = 1e-3, 0.9, 0.999, 1e-7
NAME = re.compile(r"^epoch-(\\d{6})\\.npz$")


def checkpoints():
    """(epoch, path) of every complete checkpoint, oldest first."""
    found = []
    if os.path.isdir(CHECKPOINTS):
        for entry in os.listdir(CHECKPOINTS):
            match = NAME.match(entry)
            if match:
                found.append((int(match.group(1)), os.path.join(CHECKPOINTS, entry)))
    return sorted(found)


def write_atomically(path, write, mode="w"):
    """write(handle) into path + ".partial", flushed to disk, then renamed over path: a reader (the monitor, a
    trainer resuming on another node) sees the old file or the new one, never part of one."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    partial = path + ".partial"
    with open(partial, mode) as handle:
        write(handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, path)


def prune():
    """Keeps the newest KEEP checkpoints."""
    for _, old in checkpoints()[:-KEEP]:
        try:
            os.remove(old)
        except FileNotFoundError:
            pass


def resume(load):
    """(epoch, path, state) of the newest checkpoint that load(path) reads, else None."""
    for epoch, path in reversed(checkpoints()):
        try:
            return epoch, path, load(path)
        except Exception as error:  # a damaged file: zipfile, OS and value errors alike
            print("cannot read %s (%s): trying an older checkpoint" % (path, error), flush=True)
    return None


def synthetic_data():
    rng = np.random.default_rng(42)
    x = rng.normal(size=(SAMPLES, FEATURES)).astype("float32")
    weights = rng.normal(size=(FEATURES, 1)).astype("float32")
    noise = 0.1 * rng.normal(size=(SAMPLES, 1)).astype("float32")
    return x, np.tanh(x @ weights) + noise


def new_state():
    """He-initialised weights, zero biases, zero Adam moments, step 0."""
    rng = np.random.default_rng(7)
    state = {"step": np.zeros((), dtype="int64")}
    for layer, (fan_in, fan_out) in enumerate(zip(LAYERS, LAYERS[1:])):
        state["w%d" % layer] = (rng.normal(size=(fan_in, fan_out)) * np.sqrt(2.0 / fan_in)).astype("float32")
        state["b%d" % layer] = np.zeros(fan_out, dtype="float32")
    for name in [name for name in state if name != "step"]:
        state["m_" + name] = np.zeros_like(state[name])
        state["v_" + name] = np.zeros_like(state[name])
    return state


def load_state(path):
    template = new_state()
    with np.load(path) as data:
        state = {name: data[name] for name in data.files}
    for name, value in template.items():
        if name not in state or state[name].shape != value.shape:
            raise ValueError("%s is missing or has another shape" % name)
    return state


def gradients(state, x, y):
    """Forward and backward pass of one batch: (gradients, mean squared error, mean absolute error)."""
    last = len(LAYERS) - 2
    activations = [x]
    for layer in range(last + 1):
        z = activations[-1] @ state["w%d" % layer] + state["b%d" % layer]
        activations.append(z if layer == last else np.maximum(z, 0))
    error = activations[-1] - y
    delta = 2 * error / len(x)
    grads = {}
    for layer in range(last, -1, -1):
        grads["w%d" % layer] = activations[layer].T @ delta
        grads["b%d" % layer] = delta.sum(axis=0)
        if layer:
            delta = (delta @ state["w%d" % layer].T) * (activations[layer] > 0)
    return grads, float(np.mean(error * error)), float(np.mean(np.abs(error)))


def adam(state, grads):
    state["step"] = state["step"] + 1
    step = int(state["step"])
    for name, grad in grads.items():
        m = state["m_" + name] = BETA1 * state["m_" + name] + (1 - BETA1) * grad
        v = state["v_" + name] = BETA2 * state["v_" + name] + (1 - BETA2) * grad * grad
        m_hat = m / (1 - BETA1**step)
        v_hat = v / (1 - BETA2**step)
        state[name] = (state[name] - RATE * m_hat / (np.sqrt(v_hat) + EPSILON)).astype("float32")


def train_epoch(state, x, y, epoch):
    """One pass in a shuffled order fixed by the epoch number: (mean loss, mean mae) over its batches."""
    order = np.random.default_rng(epoch).permutation(len(x))
    loss = mae = 0.0
    for start in range(0, len(x), BATCH):
        batch = order[start:start + BATCH]
        grads, batch_loss, batch_mae = gradients(state, x[batch], y[batch])
        adam(state, grads)
        loss += batch_loss * len(batch)
        mae += batch_mae * len(batch)
    return loss / len(x), mae / len(x)


def save(state, number):
    path = os.path.join(CHECKPOINTS, "epoch-%06d.npz" % number)
    write_atomically(path, lambda handle: np.savez(handle, **state), mode="wb")
    prune()
    return path


def main():
    os.makedirs(CHECKPOINTS, exist_ok=True)
    found = resume(load_state)
    if found:
        epoch, path, state = found
        print("resuming from %s (epoch %d)" % (path, epoch), flush=True)
    else:
        epoch, state = 0, new_state()
        print("no checkpoint in %s: starting from scratch" % CHECKPOINTS, flush=True)
    x, y = synthetic_data()
    while EPOCHS <= 0 or epoch < EPOCHS:
        started = time.monotonic()
        loss, mae = train_epoch(state, x, y, epoch)
        epoch += 1
        path = save(state, epoch)
        metrics = {
            "epoch": epoch,
            "loss": loss,
            "mae": mae,
            "seconds": time.monotonic() - started,
            "checkpoint": path,
            "pod": os.uname().nodename,
            "time": time.time(),
        }
        write_atomically(METRICS, lambda handle: json.dump(metrics, handle))
        print("epoch %d saved to %s: loss %.5f (%.1fs)" % (epoch, path, loss, metrics["seconds"]), flush=True)


if __name__ == "__main__":
    # PID 1 of its container: without a handler the kernel drops SIGTERM and the pod waits out its grace period.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    main()
'''

SCRIPTS = {
    "tensorflow-trainer.py": TRAINER,
    "data-processor.py": DATA_PROCESSOR,
    "model-monitor.py": MODEL_MONITOR,
}
