"""The programs of the certification workload, shipped in a ConfigMap and run by ``python3`` of the
``tensorflow/tensorflow:2.13.0`` image (Python 3.8: no newer syntax here). k8s/workloads/ holds the same text.
The ``numpy`` variant (``numpy_scripts``) runs DATA_PROCESSOR and MODEL_MONITOR as they are: they need nothing but
numpy and the standard library, and must stay so."""

from __future__ import annotations

TRAINER = '''"""tensorflow-trainer: trains a small Keras regression model on synthetic data, without end.

After every epoch it saves the model to $DATA_DIR/checkpoints/epoch-NNNNNN.keras (keeping the newest
$KEEP_CHECKPOINTS) and its metrics to $DATA_DIR/metrics/trainer.json. On start it resumes from the newest
checkpoint, so a pod recreated on another node continues where the old one stopped."""
import json
import os
import re
import signal
import sys
import time

import numpy as np
import tensorflow as tf

DATA_DIR = os.environ.get("DATA_DIR", "/data")
CHECKPOINTS = os.path.join(DATA_DIR, "checkpoints")
METRICS = os.path.join(DATA_DIR, "metrics", "trainer.json")
KEEP = max(1, int(os.environ.get("KEEP_CHECKPOINTS", "3")))
SAMPLES = int(os.environ.get("TRAIN_SAMPLES", "200000"))
FEATURES = 32
NAME = re.compile(r"^epoch-(\\d{6})\\.keras$")


def checkpoints():
    """(epoch, path) of every complete checkpoint, oldest first."""
    found = []
    if os.path.isdir(CHECKPOINTS):
        for entry in os.listdir(CHECKPOINTS):
            match = NAME.match(entry)
            if match:
                found.append((int(match.group(1)), os.path.join(CHECKPOINTS, entry)))
    return sorted(found)


def synthetic_data():
    rng = np.random.default_rng(42)
    x = rng.normal(size=(SAMPLES, FEATURES)).astype("float32")
    weights = rng.normal(size=(FEATURES, 1)).astype("float32")
    noise = 0.1 * rng.normal(size=(SAMPLES, 1)).astype("float32")
    return x, np.tanh(x @ weights) + noise


def new_model():
    model = tf.keras.Sequential(
        [
            tf.keras.layers.Input(shape=(FEATURES,)),
            tf.keras.layers.Dense(128, activation="relu"),
            tf.keras.layers.Dense(64, activation="relu"),
            tf.keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    return model


def write_json(path, value):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    partial = path + ".partial"
    with open(partial, "w") as handle:
        json.dump(value, handle)
    os.replace(partial, path)


class CheckpointEveryEpoch(tf.keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        number = epoch + 1
        path = os.path.join(CHECKPOINTS, "epoch-%06d.keras" % number)
        partial = os.path.join(CHECKPOINTS, "partial-%06d.keras" % number)
        self.model.save(partial)
        os.replace(partial, path)
        for _, old in checkpoints()[:-KEEP]:
            os.remove(old)
        logs = logs or {}
        metrics = {
            "epoch": number,
            "loss": float(logs.get("loss", float("nan"))),
            "mae": float(logs.get("mae", float("nan"))),
            "checkpoint": path,
            "pod": os.uname().nodename,
            "time": time.time(),
        }
        write_json(METRICS, metrics)
        print("epoch %d saved to %s: loss %.5f" % (number, path, metrics["loss"]), flush=True)


def main():
    os.makedirs(CHECKPOINTS, exist_ok=True)
    found = checkpoints()
    if found:
        epoch, path = found[-1]
        model = tf.keras.models.load_model(path)
        print("resuming from %s (epoch %d)" % (path, epoch), flush=True)
    else:
        epoch, model = 0, new_model()
        print("no checkpoint in %s: starting from scratch" % CHECKPOINTS, flush=True)
    x, y = synthetic_data()
    model.fit(
        x, y, batch_size=256, epochs=10**9, initial_epoch=epoch, verbose=2, callbacks=[CheckpointEveryEpoch()]
    )


if __name__ == "__main__":
    # PID 1 of its container: without a handler the kernel drops SIGTERM and the pod waits out its grace period.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    main()
'''

DATA_PROCESSOR = '''"""data-processor: preprocesses a synthetic sensor dataset onto the shared volume for
about $PROCESS_SECONDS seconds (default 45), then exits 0.

Every shard holds fixed sensor signals; each pass takes a new noisy capture of them and turns it into 64 log-power
spectrum bins, averaged over all passes so far (more passes, less noise). The standardised features go to
$DATA_DIR/dataset/shard-NN.npz every $WRITE_SECONDS and at the end, then manifest.json and the _SUCCESS marker. The
results stay on the shared volume, so a pod that moves has no reason to run this again."""
import json
import os
import signal
import sys
import time

import numpy as np

DATA_DIR = os.environ.get("DATA_DIR", "/data")
OUT = os.path.join(DATA_DIR, "dataset")
SECONDS = float(os.environ.get("PROCESS_SECONDS", "45"))
WRITE_SECONDS = float(os.environ.get("WRITE_SECONDS", "15"))
SHARDS = int(os.environ.get("DATASET_SHARDS", "8"))
ROWS, LENGTH, BINS = 2048, 1024, 64
WINDOW = np.hanning(LENGTH)
TIME = np.arange(LENGTH) / LENGTH


def frequencies(number):
    """The fixed signal frequencies of one shard (its labels)."""
    return np.random.default_rng(number).uniform(5, 200, size=(ROWS, 1))


def capture(labels, rng):
    """One noisy capture -> Hann-windowed power spectrum -> 64 log-power bins."""
    raw = np.sin(2 * np.pi * labels * TIME) + 0.5 * rng.normal(size=(ROWS, LENGTH))
    power = np.abs(np.fft.rfft(raw * WINDOW, axis=1)) ** 2
    return np.log1p(power[:, 1:].reshape(ROWS, BINS, -1).sum(axis=2))


def write(sums, passes, labels):
    for number in range(SHARDS):
        mean = sums[number] / passes
        features = (mean - mean.mean(axis=0)) / (mean.std(axis=0) + 1e-6)
        partial = os.path.join(OUT, "partial-%02d.npz" % number)
        np.savez(partial, features=features.astype("float32"), labels=labels[number].astype("float32"))
        os.replace(partial, os.path.join(OUT, "shard-%02d.npz" % number))


def main():
    os.makedirs(OUT, exist_ok=True)
    marker = os.path.join(OUT, "_SUCCESS")
    if os.path.exists(marker):
        os.remove(marker)
    rng = np.random.default_rng()
    labels = [frequencies(number) for number in range(SHARDS)]
    sums = [np.zeros((ROWS, BINS)) for _ in range(SHARDS)]
    started = last_write = time.monotonic()
    passes = 0
    while True:
        for number in range(SHARDS):
            sums[number] += capture(labels[number], rng)
        passes += 1
        now = time.monotonic()
        if now - started >= SECONDS:
            break
        if now - last_write >= WRITE_SECONDS:
            write(sums, passes, labels)
            last_write = now
            print("pass %d: %d shards of %d rows written" % (passes, SHARDS, ROWS), flush=True)
    write(sums, passes, labels)
    elapsed = time.monotonic() - started
    manifest = {
        "shards": SHARDS,
        "rows_per_shard": ROWS,
        "passes": passes,
        "seconds": elapsed,
        "finished": time.time(),
    }
    with open(os.path.join(OUT, "manifest.json"), "w") as handle:
        json.dump(manifest, handle)
    with open(marker, "w") as handle:
        handle.write("ok\\n")
    print("done: %d passes in %.1fs, results in %s" % (passes, elapsed, OUT), flush=True)


if __name__ == "__main__":
    # PID 1 of its container: without a handler the kernel drops SIGTERM and the pod waits out its grace period.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    main()
'''

MODEL_MONITOR = '''"""model-monitor: reports every new epoch the trainer records in
$DATA_DIR/metrics/trainer.json, and warns when none arrives for $STALL_SECONDS."""
import json
import os
import signal
import sys
import time

DATA_DIR = os.environ.get("DATA_DIR", "/data")
METRICS = os.path.join(DATA_DIR, "metrics", "trainer.json")
INTERVAL = float(os.environ.get("MONITOR_INTERVAL", "5"))
STALL = float(os.environ.get("STALL_SECONDS", "300"))


def read_metrics():
    try:
        with open(METRICS) as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def main():
    last_epoch = None
    last_change = time.monotonic()
    print("watching %s every %gs" % (METRICS, INTERVAL), flush=True)
    while True:
        metrics = read_metrics()
        now = time.monotonic()
        if metrics and metrics.get("epoch") != last_epoch:
            last_epoch, last_change = metrics.get("epoch"), now
            print("epoch %s loss %s mae %s (pod %s)" % (
                metrics.get("epoch"), metrics.get("loss"), metrics.get("mae"), metrics.get("pod")), flush=True)
        elif now - last_change > STALL:
            print("no new epoch for %.0fs" % (now - last_change), flush=True)
            last_change = now
        time.sleep(INTERVAL)


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
