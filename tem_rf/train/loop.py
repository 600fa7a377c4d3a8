"""One custom training loop for every `tf.distribute` strategy.

With Keras 3 on TF 2.21, `model.fit` fails under `MultiWorkerMirroredStrategy`; a `tf.function`
step run through `strategy.run`, with the model and optimizer built in `strategy.scope()`, works
for the default strategy (CPU / one GPU), `MirroredStrategy` (several GPUs) and
`MultiWorkerMirroredStrategy` (several machines, `TF_CONFIG`). So there is only this loop.

Reproducibility: the model's kernels are seeded per layer (`residual_unet(seed=...)`), the data
order of epoch ``e`` is fixed by ``(seed, e)`` (`tem_rf.data.load_split`), and ops run
deterministically by default; so networks of one depth differ only by architecture, the same
flags give the same weights, and a resumed run ends where an uninterrupted one would.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import re
import shutil
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

import numpy as np

from tem_rf.core.files import os_error_text
from tem_rf.core.progress import progress_bar
from tem_rf.train import tensorboard
from tem_rf.train.train_step import build_train_step
from tem_rf.train.config import TrainConfig, TrainingError, missing_to_resume, resume_changes
from tem_rf.train.distribute import is_chief, make_strategy, resolve_precision, strategy_name
from tem_rf.train.rundir import RunDir

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- devices and policy


# --------------------------------------------------------------------------- the loop


@dataclasses.dataclass
class _State:
    """Training state that must survive a restart (lives in the checkpoint)."""

    epoch: Any  # tf.Variable int64: epochs completed
    best_val_dice: Any  # tf.Variable float64
    best_epoch: Any  # tf.Variable int64


class Trainer:
    """Builds model, optimizer, steps and checkpoint for one run; `fit` trains and evaluates."""

    def __init__(self, config: TrainConfig, strategy=None) -> None:
        import keras
        import tensorflow as tf

        self._stop_if_interrupted: Callable[[], None] = lambda: None  # `fit` sets it (tem_rf.train.interrupts)

        from tem_rf import data as data_lib
        from tem_rf import metrics as metrics_lib
        from tem_rf.models import architecture_name, describe_model, residual_unet, size_divisor

        self.config = config = config.validated()
        if os.path.lexists(config.model_dir) and not os.path.isdir(config.model_dir):
            raise TrainingError(f"--model_dir {config.model_dir} is a file, not a folder; name a folder")
        self.data_info = _read_dataset_info(config.data_dir)
        self.patch_size = int(self.data_info["patch_size"])
        divisor = size_divisor(config.pool_sizes)
        if self.patch_size % divisor:
            raise TrainingError(
                f"patch size {self.patch_size} of {config.data_dir} is not divisible by "
                f"{divisor}, the product of pool sizes {config.pool_sizes}"
            )
        counts = self.data_info["counts"]
        empty = [split for split in ("train", "val", "test") if int(counts.get(split, 0)) == 0]
        if empty:
            raise TrainingError(
                f"the {' and '.join(empty)} split{'s' if len(empty) > 1 else ''} of {config.data_dir} "
                "hold no patches: training needs validation (to pick the best epoch) and test "
                "patches; rebuild the dataset with a --split that gives every split an image (with --split_files: "
                "a val list, or --val_fraction above 0)"
            )
        self.train_sources = None  # all micrographs of the training split
        train_patches = int(counts["train"])
        if config.train_images:
            try:
                self.train_sources = data_lib.training_subset(self.data_info, config.train_images, config.seed)
            except ValueError as err:
                raise TrainingError(f"--train_images={config.train_images}: {err}") from None
            patches = data_lib.patch_counts(self.data_info)
            train_patches = sum(patches.get(name, 0) for name in self.train_sources)
        train_count = train_patches * (8 if config.augment else 1)
        if train_count < config.batch_size:
            raise TrainingError(
                f"the training {'micrographs' if config.train_images else 'split'} of {config.data_dir} hold {train_count} patches"
                f"{' (with augmentation)' if config.augment else ''}, fewer than one batch of "
                f"{config.batch_size}"
            )
        self.train_elements = train_count
        self.steps_per_epoch = config.epoch_steps or train_count // config.batch_size
        self.model_dir = Path(config.model_dir)
        self.run = RunDir(self.model_dir)
        self.precision = resolve_precision(config.precision)
        if config.deterministic:
            tf.config.experimental.enable_op_determinism()
        self.strategy = strategy if strategy is not None else make_strategy(
            config.strategy, worker_timeout_s=config.worker_timeout_s)
        self.chief = is_chief(self.strategy)
        self._data = data_lib
        self.pixel_size_nm = self.data_info.get("pixel_size_nm")

        previous_policy = keras.mixed_precision.global_policy().name
        keras.mixed_precision.set_global_policy(self.precision)
        try:
            with self.strategy.scope():
                self.model = residual_unet(
                    config.num_blocks,
                    config.pool_sizes,
                    config.dilations,
                    seed=config.seed,
                    num_classes=config.num_classes,
                    # Global-batch statistics: the result does not depend on the replica count.
                    synchronized_bn=self.strategy.num_replicas_in_sync > 1,
                )
                optimizer = keras.optimizers.Adam(config.learning_rate)
                if self.precision == "mixed_float16":
                    # float16 gradients underflow without loss scaling; bfloat16 does not need it.
                    optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
                self.optimizer = optimizer
                self.optimizer.build(self.model.trainable_variables)
                self.hard_dice = metrics_lib.HardDice()
                self.soft_dice = metrics_lib.SoftDice()
                # Pooled over each epoch's training batches, as they are trained.
                self.train_hard_dice = metrics_lib.HardDice(name="train_hard_dice")
                self.train_soft_dice = metrics_lib.SoftDice(name="train_soft_dice")
                # A copy of the weights with the best validation dice, kept in the checkpoint:
                # every worker holds the same copy, so all of them test the same weights.
                self.best_weights = [
                    tf.Variable(tf.zeros(v.shape, v.dtype), trainable=False, name=f"best_{i}")
                    for i, v in enumerate(self.model.weights)
                ]
        finally:
            keras.mixed_precision.set_global_policy(previous_policy)
        self.architecture = architecture_name(config.num_blocks, config.pool_sizes, config.dilations)
        # Fine-tuning: the start weights (a resume restores its checkpoint over them).
        self.init_weights_sha256 = self._load_init_weights() if config.init_from else None
        # Plain (per-worker) counters: every worker assigns them the same values.
        self.state = _State(
            epoch=tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch"),
            best_val_dice=tf.Variable(-1.0, dtype=tf.float64, trainable=False),
            best_epoch=tf.Variable(0, dtype=tf.int64, trainable=False),
        )
        self.checkpoint = tf.train.Checkpoint(
            model=self.model,
            optimizer=self.optimizer,
            epoch=self.state.epoch,
            best_val_dice=self.state.best_val_dice,
            best_epoch=self.state.best_epoch,
            best_weights=self.best_weights,
        )
        self.description = describe_model(self.model, self.pixel_size_nm)
        jit_compile = config.jit_compile
        if jit_compile and self.strategy.num_replicas_in_sync > 1:
            # Synchronised batch norm all-reduces inside the forward pass, which XLA's
            # single-device compilation cannot hold.
            logger.warning("--xla is ignored with %d replicas", self.strategy.num_replicas_in_sync)
            jit_compile = False
        self._train_step = build_train_step(
            self.strategy, self.model, self.optimizer, jit_compile, metrics=(self.train_hard_dice, self.train_soft_dice)
        )
        self._eval_step = self._make_eval_step()

    # -- steps ---------------------------------------------------------------------------------

    def _make_eval_step(self):
        import keras
        import tensorflow as tf

        strategy, model = self.strategy, self.model
        hard, soft = self.hard_dice, self.soft_dice

        def replica_step(images, labels):
            probabilities = model(images, training=False)
            per_pixel = keras.losses.sparse_categorical_crossentropy(labels, probabilities)
            hard.update_state(labels, probabilities)
            soft.update_state(labels, probabilities)
            return tf.reduce_sum(tf.cast(per_pixel, tf.float64)), tf.cast(tf.size(labels), tf.float64)

        @tf.function
        def step(images, labels):
            loss_sum, count = strategy.run(replica_step, args=(images, labels))
            return (
                strategy.reduce(tf.distribute.ReduceOp.SUM, loss_sum, axis=None),
                strategy.reduce(tf.distribute.ReduceOp.SUM, count, axis=None),
            )

        return step

    # -- data ----------------------------------------------------------------------------------

    def _distributed(self, dataset):
        import tensorflow as tf

        options = tf.data.Options()
        # Every worker reads the same files in the same order and keeps its share of each
        # global batch: the data order does not depend on the number of workers.
        options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
        return self.strategy.experimental_distribute_dataset(dataset.with_options(options))

    def _train_data(self, epoch: int):
        options = dict(sources=self.train_sources, augment=self.config.augment, shuffle_seed=self.config.seed,
                       drop_remainder=True, **self._target)
        if not self.config.epoch_steps:  # an epoch is one pass over the data
            return self._data.load_split(self.config.data_dir, "train", self.config.batch_size, epoch=epoch, **options)
        # An epoch of a set number of steps: the passes over the data continue from where the
        # last epoch stopped, so a resumed run sees the same batches as an uninterrupted one.
        data_epoch, start = divmod(epoch * self.steps_per_epoch * self.config.batch_size, self.train_elements)
        return self._data.load_split(self.config.data_dir, "train", self.config.batch_size, epoch=data_epoch,
                                     start=start, repeat=True, **options).take(self.steps_per_epoch)

    @property
    def _target(self) -> dict[str, Any]:
        """`load_split`'s label options for this run's target."""
        return {"target": self.config.target, "boundary_width": self.config.boundary_width}

    def evaluate(self, split: str) -> dict[str, float]:
        """Pixel-pooled loss, hard and soft dice on a split (8 dihedral variants by default)."""
        dataset = self._data.load_split(
            self.config.data_dir, split, self.config.batch_size, augment=self.config.eval_augment, **self._target
        )
        self.hard_dice.reset_state()
        self.soft_dice.reset_state()
        loss_sum, count = 0.0, 0.0
        for batch in self._distributed(dataset):
            self._stop_if_interrupted()
            batch_loss, batch_count = self._eval_step(*batch)
            loss_sum += float(batch_loss)
            count += float(batch_count)
        return {
            "loss": loss_sum / max(count, 1.0),
            "hard_dice": float(self.hard_dice.result()),
            "soft_dice": float(self.soft_dice.result()),
        }

    def _load_init_weights(self) -> str:
        """Sets the model's weights to those of ``--init_from`` and returns their SHA-256; a source
        that cannot be read or holds another architecture or target is a `TrainingError` naming
        both."""
        import hashlib

        from tem_rf.core.pretrained import UnknownPretrainedError
        from tem_rf.train.rundir import ModelLoadError, load_run

        source = self.config.init_from
        try:
            model, config, _ = load_run(source)
        except (ModelLoadError, UnknownPretrainedError, OSError) as err:
            raise TrainingError(f"--init_from {source}: cannot be loaded ({err})") from None
        theirs = config.get("architecture") or model.name
        classes = model.outputs[0].shape[-1]
        mine = f"{self.architecture} ({self.config.num_classes} classes, --target={self.config.target})"
        shapes = [tuple(w.shape) for w in model.weights]
        if theirs != self.architecture or classes != self.config.num_classes or shapes != [
                tuple(w.shape) for w in self.model.weights]:
            raise TrainingError(
                f"--init_from {source} holds {theirs} ({classes} classes) but this run is {mine}: its weights do "
                "not fit; start from a run of this architecture and target, or train from scratch"
            )
        weights = model.get_weights()
        self.model.set_weights(weights)
        digest = hashlib.sha256()
        for array in weights:
            digest.update(np.ascontiguousarray(array).tobytes())
        logger.info("starting from the weights of %s (sha256 %s...)", source, digest.hexdigest()[:12])
        return digest.hexdigest()

    # -- outputs -------------------------------------------------------------------------------

    def _check_dataset_unchanged(self, epoch: int) -> None:
        """Refuses to keep an epoch trained while the dataset was rebuilt (make_tfrecords
        --overwrite into --data_dir) or edited: its fingerprint (splits, shard checksums) is read
        again after each epoch and compared with the one the run started on."""
        from tem_rf.data.dataset import dataset_fingerprint

        try:
            now = dataset_fingerprint(_read_dataset_info(self.config.data_dir))
        except (TrainingError, KeyError, TypeError):
            now = None
        if now != dataset_fingerprint(self.data_info):
            raise TrainingError(
                f"{self.config.data_dir}: the dataset was rebuilt or changed while this run trained (noticed after "
                f"epoch {epoch}); that epoch is not kept, the last checkpoint (epoch {int(self.state.epoch)}) is. "
                f"Resume {self.model_dir} once the dataset is the one it started on, or start a new run on the new one"
            )

    def resolved_config(self) -> dict[str, Any]:
        """The config as run: flags plus what was derived (architecture, RF, precision...)."""
        import tem_rf
        from tem_rf.data.dataset import dataset_fingerprint

        resolved = dataclasses.asdict(self.config)
        resolved.update(
            pool_sizes=list(self.config.pool_sizes),
            dilations=list(self.config.dilations),
            architecture=self.architecture,
            precision=self.precision,
            precision_requested=self.config.precision,
            strategy=strategy_name(self.strategy),
            strategy_requested=self.config.strategy,
            num_replicas=self.strategy.num_replicas_in_sync,
            patch_size=self.patch_size,
            pixel_size_nm=self.pixel_size_nm,
            receptive_field_px=self.description["receptive_field_px"],
            receptive_field_nm=self.description["receptive_field_nm"],
            trainable_params=self.description["trainable_params"],
            size_divisor=self.description["size_divisor"],
            steps_per_epoch=self.steps_per_epoch,
            # --train_images: which micrographs of the training split it learned from
            train_sources=self.train_sources,
            # The dataset's preprocessing travels with the run: export needs no dataset.
            preprocessing=self.data_info["preprocessing"],
            # The particle sizes (px) it learned from: `segment --rescale` matches new micrographs to them.
            particle_diameter_px=self.data_info.get("particle_diameter_px"),
            # What the dataset was (split membership, shard contents): a resume on a rebuilt one is refused.
            dataset_fingerprint=dataset_fingerprint(self.data_info),
            # Fine-tuning: which weights the run started from (part of the resume contract).
            init_weights_sha256=self.init_weights_sha256,
            tem_rf_version=tem_rf.__version__,
        )
        return resolved

    def _work_dir(self) -> RunDir:
        """Where this worker writes: the run dir on the chief, a scratch dir elsewhere.

        Every worker must take part in saving under multi-worker training; only the chief's
        files are kept.
        """
        if self.chief:
            return self.run
        resolver = self.strategy.cluster_resolver
        return RunDir(self.model_dir / f".worker-{resolver.task_type}-{resolver.task_id}")

    def _check_resumable(self) -> None:
        """Refuses to resume a run whose config.json differs in a setting that changes results
        (the "resume" rule of each TrainConfig field), or checkpoints of an unknown run. A run
        with no checkpoint yet (it failed in its first epoch) has nothing to resume: it starts
        anew with the new settings."""
        if not self.run.config_file.exists():
            leftovers = self.run.run_files()
            if leftovers:
                raise TrainingError(
                    f"{self.model_dir}: holds {', '.join(leftovers)} but no config.json, so the run they "
                    "belong to is unknown; use another --model_dir (or delete the folder to start anew)"
                )
            return
        if self.run.latest_checkpoint() is None:
            return
        try:
            saved = self.run.config()
        except ValueError as err:
            raise TrainingError(f"{err}; cannot tell which run {self.model_dir} holds") from None
        missing = missing_to_resume(saved)
        if missing:
            raise TrainingError(
                f"{self.run.config_file}: lacks {', '.join(missing)}, so the network its checkpoints hold is "
                "unknown and is not resumed; use another --model_dir (or restore the run's config.json)"
            )
        changes = resume_changes(saved, self.resolved_config())
        if changes:
            raise TrainingError(
                f"{self.model_dir}: {'; '.join(change.describe() for change in changes)}; use another "
                "--model_dir, or pass the run's values to resume it"
            )

    @contextlib.contextmanager
    def _claimed(self, work: RunDir):
        """The work folder, made and locked for this process for the block (one writer per run
        folder); a changed run is refused before anything is written, and a folder this call
        made is removed again when the block fails before the run's first checkpoint."""
        from tem_rf.core.files import LockHeldError

        made = _missing_folders(work.path)
        if not self.chief:
            made = made[-1:]  # the chief owns the run folder itself
        try:
            work.path.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise TrainingError(f"--model_dir {work.path}: cannot make the folder ({os_error_text(err)})") from None
        try:
            with work.locked():
                try:
                    yield
                except BaseException:
                    # Nothing resumable yet (no checkpoint): a folder this call made goes again,
                    # config.json and logs included, so a failed first epoch leaves no trace.
                    if made and not any(work.checkpoints_dir.glob("ckpt-*.index")):
                        _remove_made_folders(made)
                    raise
        except LockHeldError as err:
            holder = f"pid {err.pid}" if err.pid is not None else "pid unknown"
            raise TrainingError(
                f"{work.path}: another tem_rf process is training in this folder ({holder})"
            ) from None

    def fit(self, progress: bool = True) -> dict[str, Any]:
        """Trains up to ``config.epochs`` (resuming from the last checkpoint), then tests.

        Returns the content of ``metrics.json``. The run folder is locked while it trains.
        """
        from tem_rf.train.interrupts import interrupts_between_steps

        work = self._work_dir()
        self._check_resumable()  # a changed run is refused before the folder is touched...
        with self._claimed(work), interrupts_between_steps() as stop_if_interrupted:
            self._stop_if_interrupted = stop_if_interrupted
            try:
                return self._fit(work, progress)
            finally:
                self._stop_if_interrupted = lambda: None

    def _fit(self, work: RunDir, progress: bool) -> dict[str, Any]:
        import keras
        import tensorflow as tf

        config = self.config
        self._check_resumable()  # ...and again under the lock: no other writer between check and write
        work.remove_stale_temporaries()
        manager = tf.train.CheckpointManager(self.checkpoint, work.checkpoints_dir, max_to_keep=2)
        # Every worker resumes from the chief's checkpoint, so all start from the same epoch.
        latest = self.run.latest_checkpoint()
        if latest:
            try:
                self.checkpoint.restore(latest).expect_partial()
            except (tf.errors.OpError, ValueError, AssertionError, IndexError, OSError) as err:
                # IndexError: a truncated data file ("Read less bytes than requested")
                reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise TrainingError(
                    f"{latest}: corrupt or unreadable checkpoint ({reason}); delete {self.run.checkpoints_dir} "
                    "to train the run from the start"
                ) from None
            logger.info("resumed %s at epoch %d", self.model_dir, int(self.state.epoch))
        start_epoch = int(self.state.epoch)
        if start_epoch >= config.epochs:
            logger.warning(
                "%s has already trained %d epochs (--epochs=%d): nothing to train; raise --epochs "
                "to continue the run. Re-scoring the best weights.",
                self.model_dir, start_epoch, config.epochs,
            )
        if self.chief:
            work.write_config(self.resolved_config())
        # Rows of an epoch that was not checkpointed are dropped: it is trained again.
        history = [row for row in work.history() if row["epoch"] <= start_epoch]
        # logs/ holds the run's HParams session; logs/train, val, test its scalars and images.
        tensorboard.write_session(work.logs_dir, self.hparams())
        train_writer = tf.summary.create_file_writer(str(work.logs_dir / "train"))
        val_writer = tf.summary.create_file_writer(str(work.logs_dir / "val"))
        preview = self._preview_batch() if config.num_images else None

        for epoch in range(start_epoch, config.epochs):
            self._stop_if_interrupted()
            started = time.perf_counter()
            loss_sum = 0.0
            self.train_hard_dice.reset_state()
            self.train_soft_dice.reset_state()
            steps = _progress(
                self._distributed(self._train_data(epoch)),
                progress and self.chief,
                f"epoch {epoch + 1}/{config.epochs}",
                self.steps_per_epoch,
            )
            for step_index, batch in enumerate(steps):
                self._stop_if_interrupted()  # Ctrl-C: between steps, where nothing is half done
                loss = float(self._train_step(batch))
                if not math.isfinite(loss):
                    raise TrainingError(
                        f"loss became {loss} at epoch {epoch + 1}, step {step_index + 1} of "
                        f"{self.model_dir}; the last good checkpoint (epoch {int(self.state.epoch)}) "
                        "is kept. Try a lower --learning_rate or --precision=float32"
                    )
                loss_sum += loss
                if hasattr(steps, "set_postfix"):
                    steps.set_postfix(loss=f"{loss:.4f}", refresh=False)
            seconds = time.perf_counter() - started
            train_loss = loss_sum / self.steps_per_epoch
            train_hard = float(self.train_hard_dice.result())
            train_soft = float(self.train_soft_dice.result())
            val = self.evaluate("val")
            self._check_dataset_unchanged(epoch + 1)  # before anything of this epoch is kept
            lr = float(np.asarray(keras.ops.convert_to_numpy(self.optimizer.learning_rate)))
            improved = val["hard_dice"] > float(self.state.best_val_dice)
            best_so_far = val["hard_dice"] if improved else float(self.state.best_val_dice)
            row = {
                "epoch": epoch + 1,
                "train_loss": train_loss,
                "train_hard_dice": train_hard,
                "train_soft_dice": train_soft,
                "val_loss": val["loss"],
                "val_hard_dice": val["hard_dice"],
                "val_soft_dice": val["soft_dice"],
                "learning_rate": lr,
                "steps_per_second": self.steps_per_epoch / seconds,
                "seconds": seconds,
            }
            history.append(row)
            with train_writer.as_default(step=epoch + 1):
                tf.summary.scalar("loss", train_loss)
                tf.summary.scalar("hard_dice", train_hard)
                tf.summary.scalar("soft_dice", train_soft)
                tf.summary.scalar("learning_rate", lr)
                tf.summary.scalar("steps_per_second", row["steps_per_second"])
            with val_writer.as_default(step=epoch + 1):
                tf.summary.scalar("loss", val["loss"])
                tf.summary.scalar("hard_dice", val["hard_dice"])
                tf.summary.scalar("soft_dice", val["soft_dice"])
                tf.summary.scalar("best_hard_dice", best_so_far)
                if preview is not None:
                    # Every --image_every epochs, the first and the last; and each new best.
                    regular = (epoch + 1) % config.image_every == 0 or epoch == 0 or epoch + 1 == config.epochs
                    self._log_images(preview, regular=regular, best=improved)
            logger.info(
                "%s epoch %d: train loss %.4f, hard dice %.4f; val loss %.4f, hard dice %.4f, soft dice %.4f",
                self.architecture, epoch + 1, train_loss, train_hard, val["loss"], val["hard_dice"], val["soft_dice"],
            )
            self.state.epoch.assign(epoch + 1)
            if improved:
                self.state.best_val_dice.assign(val["hard_dice"])
                self.state.best_epoch.assign(epoch + 1)
                for shadow, variable in zip(self.best_weights, self.model.weights):
                    shadow.assign(variable.value)
                self._save_model(work.best_model_file)
            # History first, then the checkpoint: a restart re-runs at most this epoch.
            if self.chief:
                work.write_history(history)
            _save_checkpoint(manager, epoch + 1)
        train_writer.flush()
        val_writer.flush()

        self._save_model(work.last_model_file)
        results = self._final_metrics()
        # The best weights' test scores, at the last epoch's step.
        test_writer = tf.summary.create_file_writer(str(work.logs_dir / "test"))
        with test_writer.as_default(step=int(self.state.epoch)):
            for name in ("hard_dice", "soft_dice", "loss"):
                if f"test_{name}" in results:
                    tf.summary.scalar(name, results[f"test_{name}"])
        test_writer.close()
        tensorboard.write_session_end(work.logs_dir)
        if self.chief:
            work.write_metrics(results)
        else:
            # Non-chief workers keep their final weights only when asked (lockstep checks).
            if config.keep_worker_dirs:
                work.write_model(self.model, work.last_model_file)
            else:
                shutil.rmtree(work.path, ignore_errors=True)
        return results

    def _final_metrics(self) -> dict[str, Any]:
        """Test (and validation) dice of the best-on-validation weights."""
        last_weights = self.model.get_weights()
        if int(self.state.best_epoch) > 0:
            for shadow, variable in zip(self.best_weights, self.model.weights):
                variable.assign(shadow)
        val = self.evaluate("val")
        test = self.evaluate("test")
        self.model.set_weights(last_weights)
        return {
            "architecture": self.architecture,
            "seed": self.config.seed,
            "trainable_params": self.description["trainable_params"],
            "receptive_field_px": self.description["receptive_field_px"],
            "receptive_field_nm": self.description["receptive_field_nm"],
            "best_epoch": int(self.state.best_epoch),
            "epochs_trained": int(self.state.epoch),
            "val_hard_dice": val["hard_dice"],
            "val_soft_dice": val["soft_dice"],
            "test_loss": test["loss"],
            "test_hard_dice": test["hard_dice"],
            "test_soft_dice": test["soft_dice"],
        }

    def _save_model(self, path: Path) -> None:
        if self.chief:
            self.run.write_model(self.model, path)

    def _preview_batch(self):
        """A few fixed validation patches for the TensorBoard image panel."""
        dataset = self._data.load_split(self.config.data_dir, "val", self.config.num_images, **self._target)
        for images, labels in dataset.take(1):
            return images, labels
        return None

    def _log_images(self, preview, regular: bool = True, best: bool = False) -> None:
        """The preview patches, labels and predicted particle probability (``regular``), and the
        probability again as ``best/particle_probability`` when the epoch is a new best (so
        that tag's latest image is the prediction of best.keras, at the best epoch's step)."""
        import tensorflow as tf

        if not (regular or best):
            return
        images, labels = preview
        probabilities = self.model(images, training=False)
        # the particle probability: channel 1, or interior + boundary of a boundary target
        probabilities = tf.reduce_sum(probabilities[..., 1:], axis=-1, keepdims=True)
        if regular:
            low = tf.reduce_min(images, axis=[1, 2, 3], keepdims=True)
            high = tf.reduce_max(images, axis=[1, 2, 3], keepdims=True)
            tf.summary.image("patch", (images - low) / tf.maximum(high - low, 1e-6), max_outputs=8)
            top = float(self.config.num_classes - 1)  # boundary labels: interior grey, boundary white
            tf.summary.image("label", tf.cast(labels[..., None], tf.float32) / top, max_outputs=8)
        shown = tensorboard.probability_colour_image(probabilities)
        scale = (f"colour: {tensorboard.PROBABILITY_COLOUR_MAP}, fixed 0 (dark blue) to 1 (yellow); the strip on the "
                 "right is the scale")
        if regular:
            tf.summary.image("particle_probability", shown, max_outputs=8,
                             description=f"predicted particle probability; {scale}")
        if best:
            tf.summary.image(
                "best/particle_probability", shown, max_outputs=8,
                description="particle probability at each epoch that raised the best validation hard "
                            f"dice; the latest is the best epoch's (best.keras); {scale}",
            )

    def hparams(self) -> dict[str, Any]:
        """The run's hyperparameters for TensorBoard's HParams dashboard (`tem_rf.train.tensorboard`)."""
        return tensorboard.run_hparams(
            self.config,
            architecture=self.architecture,
            precision=self.precision,
            receptive_field_px=self.description["receptive_field_px"],
            receptive_field_nm=self.description["receptive_field_nm"],
            trainable_params=self.description["trainable_params"],
        )


def _missing_folders(folder: Path) -> list[Path]:
    """``folder`` and those of its parents that do not exist yet, outermost first."""
    missing = []
    folder = Path(os.path.abspath(folder))
    while not os.path.lexists(folder) and folder != folder.parent:
        missing.append(folder)
        folder = folder.parent
    return missing[::-1]


def _remove_made_folders(made: list[Path]) -> None:
    """Removes the folder this process made (``made[-1]``, with what it wrote) and its parents
    that it made and that are still empty (another process may have put a run beside it)."""
    shutil.rmtree(made[-1], ignore_errors=True)
    for folder in reversed(made[:-1]):
        try:
            folder.rmdir()
        except OSError:
            break


def _save_checkpoint(manager, number: int) -> None:
    """``manager.save``; on an error (disk full) its partial files go and one line says why."""
    import tensorflow as tf

    try:
        manager.save(checkpoint_number=number)
    except (OSError, tf.errors.OpError) as err:
        directory = Path(manager.directory)
        partial = re.compile(rf"^ckpt-{number}(\.|_temp$)")  # ckpt-2.index, ckpt-2_temp/, not ckpt-20
        for leftover in [p for p in directory.iterdir() if partial.match(p.name)]:
            if leftover.is_dir():
                shutil.rmtree(leftover, ignore_errors=True)
            else:
                leftover.unlink(missing_ok=True)
        reason = os_error_text(err) if isinstance(err, OSError) else str(err).strip().splitlines()[0]
        raise TrainingError(f"{directory / f'ckpt-{number}'}: cannot write the checkpoint ({reason})") from None


def _read_dataset_info(data_dir: str) -> dict[str, Any]:
    from tem_rf import data as data_lib

    if not Path(data_dir).is_dir():
        raise TrainingError(f"--data_dir {data_dir} does not exist or is not a directory")
    try:
        return data_lib.read_dataset_info(data_dir)
    except (OSError, ValueError) as err:
        raise TrainingError(str(err)) from None


def _progress(iterable, enabled: bool, description: str, total: int):
    """A bar over the epoch's steps on a terminal; in a log, one line when the epoch ends."""
    return progress_bar(iterable, desc=description, total=total, unit="step", enabled=enabled)


def train(config: TrainConfig, strategy=None, progress: bool = True) -> dict[str, Any]:
    """Trains (or resumes) one run and returns its test metrics (also in ``metrics.json``)."""
    return Trainer(config, strategy).fit(progress=progress)


__all__ = [
    "TrainConfig",
    "Trainer",
    "TrainingError",
    "is_chief",
    "make_strategy",
    "resolve_precision",
    "train",
]
