"""Training on several machines: `har train --distributed`.

TensorFlow's own engine, tf.distribute.MultiWorkerMirroredStrategy, configured by the standard
``TF_CONFIG`` environment variable (one JSON per process)::

    {"cluster": {"worker": ["10.0.0.1:2222", "10.0.0.2:2222"]}, "task": {"type": "worker", "index": 0}}

Every worker runs the same `har train` command on the same recordings (or the same cache); only
the launch differs. What this module adds to a single-process run:

* :func:`start` creates the strategy (it must exist before any other TensorFlow op), with a
  collective timeout and the coordination service's heartbeat, so a peer that dies is noticed
  within seconds instead of hanging the others.
* The same global batch as a single-process run: each of ``n`` workers trains on ``batch / n``
  windows per step, and the ``n`` local batches of one step together are the single-process
  run's global batch (a permutation seeded by ``(seed, epoch)``; local batch ``j = i + n * k``
  of worker ``i`` at step ``k``, augmented with the seed ``(seed, epoch, j)``). Worker ``i``
  reads only its own windows: in memory by numpy slicing (:func:`shard_batches`), from the
  window cache by ``WindowCache.tf_dataset(..., shard=(n, i))``, which follows the same
  arithmetic. Any ``factory(per_worker_batch, n_workers, worker_index) -> tf.data.Dataset``
  plugs in through :meth:`Distributed.fit`.
* Validation windows are sharded by index (worker ``i`` evaluates windows ``i, i + n, ...``);
  the metrics are summed over workers, so ``val_loss`` is the single-process value and every
  worker takes the same early-stopping and learning-rate decisions.
* Only the chief (task ``chief``, else worker 0) writes the model directory: it trains into a
  temporary directory next to ``--out`` and renames it into place when everything is written
  (:func:`har.atomic.replace_dir`); other workers write into a temporary directory that is
  removed at the end. A run that fails leaves ``--out`` as it was.
* A worker that dies (killed, machine lost) ends the others with one line naming it
  (:class:`har.errors.DistributedError`), after at most ``HEARTBEAT_TIMEOUT_S`` seconds.

TensorFlow is imported inside functions only (training side)."""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from har.config import AugmentConfig
from har.errors import DistributedError

ENV = "TF_CONFIG"
JOBS = ("chief", "worker")
COLLECTIVE_TIMEOUT_S = 60  # one all-reduce (one training step) waiting longer than this fails
HEARTBEAT_TIMEOUT_S = 10  # a peer silent this long is declared dead by the coordination service
JOIN_TIMEOUT_S = 300  # how long a worker waits for the others to start (HAR_DISTRIBUTED_JOIN_TIMEOUT)
JOIN_TIMEOUT_ENV = "HAR_DISTRIBUTED_JOIN_TIMEOUT"
PROBE_TIMEOUT_S = 2.0

_ACTIVE: Distributed | None = None


@dataclass(frozen=True)
class Cluster:
    """The parsed ``TF_CONFIG``: every task's address and which one this process is."""

    tasks: tuple[tuple[str, int, str], ...]  # (job, index, "host:port") in cluster order
    job: str
    index: int

    @property
    def n_workers(self) -> int:
        return len(self.tasks)

    @property
    def rank(self) -> int:
        """This process's position in :attr:`tasks` (the chief is 0)."""
        return next(k for k, (j, i, _) in enumerate(self.tasks) if (j, i) == (self.job, self.index))

    @property
    def is_chief(self) -> bool:
        return self.rank == 0

    def describe(self, job: str, index: int) -> str:
        """``worker 1 (10.0.0.2:2222)``."""
        addr = next((a for j, i, a in self.tasks if (j, i) == (job, index)), "?")
        return f"{job} {index} ({addr})"

    @property
    def me(self) -> str:
        return self.describe(self.job, self.index)


def _fail(msg: str) -> DistributedError:
    return DistributedError(f"{ENV}: {msg}")


def parse_tf_config(text: str | None) -> Cluster:
    """Parse and check a ``TF_CONFIG`` value; one clear :class:`DistributedError` when it is
    missing or malformed."""
    if text is None or not text.strip():
        raise _fail(
            "not set: --distributed needs TF_CONFIG in each worker's environment, e.g. "
            '{"cluster": {"worker": ["host1:2222", "host2:2222"]}, "task": {"type": "worker", "index": 0}}'
        )
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as e:
        raise _fail(f"not valid JSON ({e})") from None
    if not isinstance(cfg, dict) or not isinstance(cfg.get("cluster"), dict) or not isinstance(cfg.get("task"), dict):
        raise _fail('must be a JSON object with "cluster" and "task" objects')
    cluster, task = cfg["cluster"], cfg["task"]
    extra = sorted(set(cluster) - set(JOBS))
    if extra:
        raise _fail(f"job(s) {', '.join(extra)} not supported (MultiWorkerMirroredStrategy uses chief and worker)")
    tasks: list[tuple[str, int, str]] = []
    for job in JOBS:
        addrs = cluster.get(job, [])
        if not isinstance(addrs, list) or not all(isinstance(a, str) for a in addrs):
            raise _fail(f'cluster "{job}" must be a list of "host:port" strings')
        if job == "chief" and len(addrs) > 1:
            raise _fail("at most one chief")
        for i, a in enumerate(addrs):
            host, sep, port = a.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise _fail(f'{job} {i} address {a!r} is not "host:port"')
            tasks.append((job, i, a))
    if not tasks:
        raise _fail('cluster has no "worker" addresses')
    if len({a for _, _, a in tasks}) != len(tasks):
        raise _fail("two tasks have the same address")
    job, index = task.get("type"), task.get("index")
    if job not in JOBS or job not in cluster:
        raise _fail(f'task "type" must be one of the cluster\'s jobs ({", ".join(j for j in JOBS if j in cluster)}), '
                    f"got {job!r}")
    if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < len(cluster[job]):
        raise _fail(f'task "index" must be an integer in [0, {len(cluster[job]) - 1}], got {index!r}')
    return Cluster(tasks=tuple(tasks), job=job, index=index)


def active() -> Distributed | None:
    """The running distributed context (set by :func:`start`), or None in a single-process run."""
    return _ACTIVE


def steps_per_epoch(n_windows: int, global_batch: int, n_workers: int) -> int:
    """Steps per epoch that every worker can take: each of ``ceil(n_windows / (global_batch /
    n_workers))`` local batches belongs to one worker (``j % n``); the steps are the local
    batches of the worker with the fewest (the at most ``n - 1`` left over are skipped this
    epoch; the permutation changes every epoch)."""
    local = global_batch // n_workers
    return (-(-int(n_windows) // local)) // n_workers


def gather(x: Any, sel: np.ndarray) -> np.ndarray:
    """Windows ``sel`` of ``x``: an array, or windows read through the cache (``x[sel]`` has
    ``.materialize()``)."""
    if isinstance(x, np.ndarray):
        return x[sel]
    return np.asarray(x[sel].materialize())


def shard_batches(
    x: Any,
    y: np.ndarray,
    global_batch: int,
    n_workers: int,
    worker: int,
    *,
    seed: int,
    augment: AugmentConfig | None,
    mean: np.ndarray,
    std: np.ndarray,
    sample_weight: np.ndarray | None = None,
) -> Iterator[tuple[np.ndarray, ...]]:
    """Worker ``worker``'s training batches, epoch after epoch (endless): at step ``k`` of epoch
    ``e`` the local batch ``j = worker + n_workers * k`` of the permutation seeded by ``(seed, e)``
    in pieces of ``global_batch / n_workers``, augmented (raw g) with the seed ``(seed, e, j)``,
    then normalised; ``(x, y, sample_weight)`` (weights 1 without class weights)."""
    from har.training.augment import augment as do_augment

    local = global_batch // n_workers
    n = x.shape[0]
    steps = steps_per_epoch(n, global_batch, n_workers)
    mean32, std32 = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    epoch = 0
    while True:
        order = np.random.default_rng([seed, epoch]).permutation(n)
        for k in range(steps):
            j = worker + n_workers * k
            sel = order[j * local:(j + 1) * local]
            xb = gather(x, sel)
            if augment is not None and augment.active:
                xb = do_augment(xb, augment, np.random.default_rng([seed, epoch, j]))
            xb = ((xb - mean32) / std32).astype(np.float32)
            sw = np.ones(sel.size, np.float32) if sample_weight is None else sample_weight[sel].astype(np.float32)
            yield xb, y[sel].astype(np.int32), sw
        epoch += 1


def shard_validation(
    n_val: int, global_batch: int, n_workers: int, worker: int
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Worker ``worker``'s validation windows ``worker, worker + n, ...`` padded to the same number
    of steps on every worker: ``(indices, weights, steps, batch)``. Padding repeats a window with
    weight 0; real windows weigh ``total / real`` so that Keras's per-batch mean (which counts the
    padding) sums to the single-process mean over the real windows."""
    local = max(1, global_batch // n_workers)
    per = -(-n_val // n_workers)
    steps = max(1, -(-per // local))
    batch = -(-per // steps)
    idx = np.arange(worker, n_val, n_workers)
    total = steps * batch * n_workers
    w = np.full(idx.size, total / max(1, n_val), np.float32)
    pad = steps * batch - idx.size
    if pad:
        idx = np.concatenate([idx, np.full(pad, idx[0] if idx.size else 0)])
        w = np.concatenate([w, np.zeros(pad, np.float32)])
    return idx, w, steps, batch


def reachable(address: str, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """True when something accepts TCP connections at ``host:port``."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            return True
    except OSError:
        return False


_WEIGHTED_ACC = "weighted_accuracy"
_TASK_RE = re.compile(r"/job:(chief|worker)/replica:\d+/task:(\d+)")


class Distributed:
    """The strategy and this worker's place in the cluster, while `har train --distributed` runs."""

    def __init__(self, cluster: Cluster, strategy: Any) -> None:
        self.cluster = cluster
        self.strategy = strategy

    @property
    def n_workers(self) -> int:
        return self.cluster.n_workers

    @property
    def is_chief(self) -> bool:
        return self.cluster.is_chief

    def scope(self) -> Any:
        """The strategy scope: build and compile the model inside it."""
        return self.strategy.scope()

    def compile_kwargs(self) -> dict[str, Any]:
        """Extra ``model.compile`` arguments (inside :meth:`scope`): an accuracy that honours the
        validation weights (Keras's plain ``metrics`` ignore sample weights, so the padding of
        :func:`shard_validation` would count); :meth:`fit` reports it as ``val_accuracy``."""
        import tf_keras

        return {"weighted_metrics": [tf_keras.metrics.SparseCategoricalAccuracy(name=_WEIGHTED_ACC)]}

    def check_batch(self, global_batch: int) -> None:
        if global_batch % self.n_workers:
            ok = global_batch - global_batch % self.n_workers or self.n_workers
            raise DistributedError(
                f"--batch-size {global_batch} is not divisible by {self.n_workers} workers "
                f"(the global batch is split evenly: e.g. --batch-size {ok})"
            )

    def distribute(self, factory: Callable[[int, int, int], Any], global_batch: int) -> Any:
        """A distributed dataset from ``factory(per_worker_batch, n_workers, worker_index)``, which
        returns this worker's ``tf.data.Dataset`` of batches (already sharded and batched)."""
        import tensorflow as tf

        def fn(ctx: Any) -> Any:
            ds = factory(ctx.get_per_replica_batch_size(global_batch), ctx.num_input_pipelines, ctx.input_pipeline_id)
            opts = tf.data.Options()
            opts.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF
            return ds.with_options(opts)

        return self.strategy.distribute_datasets_from_function(fn)

    def fit_windows(
        self,
        model: Any,
        *,
        x_train: Any,
        y_train: np.ndarray,
        sample_weight: np.ndarray | None,
        x_val: Any,
        y_val: np.ndarray,
        global_batch: int,
        seed: int,
        augment: AugmentConfig | None,
        mean: np.ndarray,
        std: np.ndarray,
        epochs: int,
        callbacks: Sequence[Any],
    ) -> Any:
        """``model.fit`` on windows in raw g (training and validation), each worker reading only
        its shard by index: arrays (n, window, channels), or anything with ``.shape`` whose
        ``[index array]`` has ``.materialize()`` (windows read through the cache). Returns
        Keras's History."""
        import tensorflow as tf

        self.check_batch(global_batch)
        w = tuple(x_train.shape[1:])
        f32, i32 = tf.float32, tf.int32
        sig = (tf.TensorSpec((None, *w), f32), tf.TensorSpec((None,), i32), tf.TensorSpec((None,), f32))
        n_train, n_val = int(x_train.shape[0]), int(x_val.shape[0])
        steps = steps_per_epoch(n_train, global_batch, self.n_workers)
        if steps < 1:
            raise DistributedError(
                f"{n_train} training windows are fewer than the global batch {global_batch}: "
                "train on one machine or lower --batch-size"
            )
        mean32, std32 = np.asarray(mean, np.float32), np.asarray(std, np.float32)

        def train_factory(_: int, n: int, i: int) -> Any:
            def gen() -> Iterator[tuple[np.ndarray, ...]]:
                yield from shard_batches(x_train, y_train, global_batch, n, i, seed=seed, augment=augment,
                                         mean=mean, std=std, sample_weight=sample_weight)

            return tf.data.Dataset.from_generator(gen, output_signature=sig).prefetch(2)

        def val_factory(_: int, n: int, i: int) -> Any:
            idx, vw, v_steps, batch = shard_validation(n_val, global_batch, n, i)

            def gen() -> Iterator[tuple[np.ndarray, ...]]:
                while True:
                    for k in range(v_steps):
                        sel = idx[k * batch:(k + 1) * batch]
                        xb = ((gather(x_val, sel) - mean32) / std32).astype(np.float32)
                        yield xb, y_val[sel].astype(np.int32), vw[k * batch:(k + 1) * batch]

            return tf.data.Dataset.from_generator(gen, output_signature=sig)

        val, val_steps = None, None
        if n_val:
            val_steps = shard_validation(n_val, global_batch, self.n_workers, 0)[2]
            val = self.distribute(val_factory, global_batch)
        return self.fit(model, self.distribute(train_factory, global_batch), steps, epochs, callbacks, val, val_steps)

    def fit(
        self,
        model: Any,
        train: Any,
        steps: int,
        epochs: int,
        callbacks: Sequence[Any],
        val: Any = None,
        val_steps: int | None = None,
    ) -> Any:
        """``model.fit`` on distributed datasets (:meth:`distribute`); a dead peer becomes one
        :class:`DistributedError` naming it."""
        import tf_keras

        class WeightedValAccuracy(tf_keras.callbacks.Callback):  # type: ignore[misc, name-defined]
            """First callback: ``val_accuracy`` is the weighted one (padding excluded), for every
            later callback and the history."""

            def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
                if logs is not None:
                    logs.pop(_WEIGHTED_ACC, None)
                    if f"val_{_WEIGHTED_ACC}" in logs:
                        logs["val_accuracy"] = logs.pop(f"val_{_WEIGHTED_ACC}")

        try:
            return model.fit(
                train, steps_per_epoch=steps, epochs=epochs, validation_data=val, validation_steps=val_steps,
                verbose=0, callbacks=[WeightedValAccuracy(), *callbacks],
            )
        except Exception as e:
            err = self.peer_error(e)
            if err is None:
                raise
            raise err from None

    def peer_error(self, e: BaseException) -> DistributedError | None:
        """The one-line error for a TensorFlow error caused by a lost peer, else None (an error of
        this worker's own, re-raised as it is). The peers are named by probing their addresses
        (the one that died no longer accepts connections), else from the error text."""
        import tensorflow as tf

        if not isinstance(e, tf.errors.OpError):
            return None
        me = (self.cluster.job, self.cluster.index)
        probed = [(j, i) for j, i, a in self.cluster.tasks if (j, i) != me and not reachable(a)]
        lost = (tf.errors.UnavailableError, tf.errors.DeadlineExceededError, tf.errors.CancelledError,
                tf.errors.AbortedError, tf.errors.InternalError)
        if not probed and not isinstance(e, lost):
            return None
        named = [(m.group(1), int(m.group(2))) for m in _TASK_RE.finditer(str(e))]
        dead = probed or [t for t in dict.fromkeys(named) if t != me]
        who = ", ".join(self.cluster.describe(j, i) for j, i in dead) if dead else "a peer"
        return DistributedError(
            f"{who} stopped responding during training ({type(e).__name__}): {self.cluster.me} stops; "
            "the model directory was not written"
        )

    def local_model(self, model: Any, build: Callable[[], Any]) -> Any:
        """A copy of the trained model outside the strategy (``build()`` makes the same
        architecture), for prediction and saving on this worker alone."""
        copy = build()
        copy.set_weights(model.get_weights())
        return copy


def join_timeout_s() -> float:
    """Seconds a worker waits for the others to start: ``HAR_DISTRIBUTED_JOIN_TIMEOUT`` or
    ``JOIN_TIMEOUT_S``."""
    text = os.environ.get(JOIN_TIMEOUT_ENV, "").strip()
    if not text:
        return float(JOIN_TIMEOUT_S)
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise DistributedError(f"{JOIN_TIMEOUT_ENV} must be a positive number of seconds, got {text!r}")
    return value


_WATCHDOG = r"""
import json, os, select, signal, socket, sys
timeout, me, tasks, pid = json.loads(sys.argv[1])
if select.select([sys.stdin], [], [], timeout)[0]:
    sys.exit(0)  # the parent joined (or exited): nothing to do

def up(addr):
    host, _, port = addr.rpartition(":")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=2).close()
        return True
    except OSError:
        return False

missing = [f"{j} {i} ({a})" for j, i, a in tasks if f"{j} {i} ({a})" != me and not up(a)]
why = (", ".join(missing) + " not started (nothing listens there)" if missing else
       'the workers did not form one cluster (does every worker have the same "cluster" in TF_CONFIG?)')
sys.stderr.write(f"Error: {me} waited {timeout:g} s for the other workers: {why}\n")
sys.stderr.flush()
os.kill(pid, signal.SIGKILL)
"""


def _join_watchdog(cluster: Cluster, timeout: float) -> subprocess.Popen[bytes]:
    """A small process that ends this one with one line naming the missing workers if
    :func:`start` has not returned after ``timeout`` seconds. TensorFlow waits for the others
    inside a C++ call that holds the GIL, so no thread of this process could; closing the
    watchdog's stdin (or exiting) dismisses it."""
    arg = json.dumps([timeout, cluster.me, [list(t) for t in cluster.tasks], os.getpid()])
    return subprocess.Popen([sys.executable, "-c", _WATCHDOG, arg], stdin=subprocess.PIPE)


def start(text: str | None = None) -> Distributed:
    """Create the MultiWorkerMirroredStrategy from ``TF_CONFIG`` (``text``, default the
    environment) and make it :func:`active`. Call before any other TensorFlow op in the process:
    waits (up to :func:`join_timeout_s`) for every worker to start."""
    global _ACTIVE
    cluster = parse_tf_config(os.environ.get(ENV) if text is None else text)
    if _ACTIVE is not None:
        return _ACTIVE
    join_timeout = join_timeout_s()
    from har.training._tf import import_tf

    tf, _ = import_tf()
    from tensorflow.python.eager import context

    jobs = [j for j in JOBS if any(t[0] == j for t in cluster.tasks)]
    watchdog = _join_watchdog(cluster, join_timeout)  # TensorFlow waits for the others without a deadline
    try:
        if context.context().coordination_service is None:
            from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2

            context.context().configure_coordination_service(
                service_type="standalone",
                service_leader=f"/job:{cluster.tasks[0][0]}/replica:0/task:0",
                heartbeat_timeout_in_ms=HEARTBEAT_TIMEOUT_S * 1000,
                shutdown_barrier_timeout_in_ms=HEARTBEAT_TIMEOUT_S * 1000,
                cluster_register_timeout_in_ms=int(join_timeout * 1000),
                coordinated_jobs=[
                    coordination_config_pb2.CoordinatedJob(name=j, num_tasks=sum(t[0] == j for t in cluster.tasks))
                    for j in jobs
                ],
            )
        options = tf.distribute.experimental.CommunicationOptions(
            implementation=tf.distribute.experimental.CommunicationImplementation.RING,
            timeout_seconds=COLLECTIVE_TIMEOUT_S,
        )
        resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec({j: [a for jj, _, a in cluster.tasks if jj == j] for j in jobs}),
            task_type=cluster.job,
            task_id=cluster.index,
            rpc_layer="grpc",
        )
        strategy = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver, communication_options=options)
    except (RuntimeError, ValueError, tf.errors.OpError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise DistributedError(f"cannot join the cluster as {cluster.me}: {first}") from None
    finally:
        with contextlib.suppress(OSError):
            watchdog.stdin.close()  # type: ignore[union-attr]
        watchdog.wait()
    _ACTIVE = Distributed(cluster, strategy)
    return _ACTIVE


def _staging_prefix(out: Path) -> str:
    return f".{out.name}.partial-{socket.gethostname()}-"


def remove_stale_staging(out: Path) -> list[Path]:
    """Remove staging directories left next to ``out`` by a chief on this host that was killed
    (its process id no longer runs); returns them."""
    prefix, gone = _staging_prefix(out), []
    for p in out.parent.glob(f"{glob.escape(prefix)}*"):
        pid = p.name[len(prefix):].split("-", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(p, ignore_errors=True)
            gone.append(p)
        except OSError:
            pass
    return gone


def train_distributed(
    data: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    config: Any,
    *,
    tf_config: str | None = None,
    echo: Callable[[str], None] = print,
    **train_kwargs: Any,
) -> Any:
    """:func:`har.training.train.train` on every worker of the cluster in ``TF_CONFIG``; the
    chief's model directory replaces ``out_dir`` only once complete, other workers' output is
    discarded. Returns the :class:`~har.training.train.TrainResult` (on other workers its
    ``out_dir`` no longer exists)."""
    from har.atomic import replace_dir
    from har.training.train import train

    out = Path(out_dir)
    cluster = parse_tf_config(os.environ.get(ENV) if tf_config is None else tf_config)
    dist = start(tf_config)
    dist.check_batch(config.batch_size)
    role = "chief" if cluster.is_chief else "worker"
    echo(f"distributed: {cluster.me}, {role} of {cluster.n_workers} workers, global batch {config.batch_size} "
         f"({config.batch_size // cluster.n_workers} per worker)")
    if cluster.is_chief:
        out.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_staging(out)
        staging = Path(tempfile.mkdtemp(prefix=f"{_staging_prefix(out)}{os.getpid()}-", dir=out.parent))
    else:
        staging = Path(tempfile.mkdtemp(prefix="har-worker-"))
    try:
        try:
            result = train(data, staging / out.name, config, echo=echo, **train_kwargs)
        except Exception as e:  # a peer lost outside model.fit (variable broadcast, prediction, ...)
            err = dist.peer_error(e)
            if err is None:
                raise
            raise err from None
        if cluster.is_chief:
            replace_dir(staging / out.name, out)
            result.out_dir = out
        return result
    finally:
        shutil.rmtree(staging, ignore_errors=True)
