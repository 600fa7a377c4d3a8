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

import dataclasses
import logging
import math
import os
import shutil
import time
from pathlib import Path
from collections.abc import Callable
from typing import Any

import numpy as np

from tem_rf.core.progress import progress_bar
from tem_rf.train import tensorboard
from tem_rf.train.config import TrainConfig, TrainingError
from tem_rf.train.eval_step import build_eval_step
from tem_rf.train.fine_tuning import load_init_weights
from tem_rf.train.resume import TrainingState, check_resumable, restore_latest, save_checkpoint
from tem_rf.train.train_step import build_train_step
from tem_rf.train.distribute import is_chief, make_strategy, resolve_precision, strategy_name
from tem_rf.train.rundir import RunDir

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- the loop


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
        self.init_weights_sha256 = load_init_weights(
            self.model, config.init_from, self.architecture, config.num_classes, config.target,
        ) if config.init_from else None
        # Plain (per-worker) counters: every worker assigns them the same values.
        self.state = TrainingState.new()
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
        self._eval_step = build_eval_step(self.strategy, self.model, self.hard_dice, self.soft_dice)

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
        """`tem_rf.train.resume.check_resumable` for this run's folder and settings."""
        check_resumable(self.run, self.resolved_config())

    def fit(self, progress: bool = True) -> dict[str, Any]:
        """Trains up to ``config.epochs`` (resuming from the last checkpoint), then tests.

        Returns the content of ``metrics.json``. The run folder is locked while it trains.
        """
        from tem_rf.train.interrupts import interrupts_between_steps

        work = self._work_dir()
        self._check_resumable()  # a changed run is refused before the folder is touched...
        with work.claimed(owns_parents=self.chief), interrupts_between_steps() as stop_if_interrupted:
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
        if restore_latest(self.checkpoint, self.run):
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
        writers = {folder: tf.summary.create_file_writer(str(work.logs_dir / folder)) for folder in ("train", "val")}
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
            tensorboard.write_epoch_scalars(writers, row, best_so_far)
            if preview is not None:
                # Every --image_every epochs, the first and the last; and each new best.
                regular = (epoch + 1) % config.image_every == 0 or epoch == 0 or epoch + 1 == config.epochs
                with writers["val"].as_default(step=epoch + 1):
                    tensorboard.log_preview_images(self.model, preview, config.num_classes, regular, best=improved)
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
            save_checkpoint(manager, epoch + 1)
        for writer in writers.values():
            writer.flush()

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
