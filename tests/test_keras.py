"""lrkit.keras: the callbacks and the range test on Keras 3 with the torch backend."""

from __future__ import annotations

import importlib.util
import math
import os
import random
import subprocess
import sys
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

import torch  # noqa: E402
from torch import nn  # noqa: E402

import lrkit  # noqa: E402
import lrkit.keras as lk  # noqa: E402
from lrkit import schedules as S  # noqa: E402
from lrkit.finder import RangeTestResult, lr_sequence  # noqa: E402

pytestmark = [
    pytest.mark.skipif(
        keras.config.backend() != "torch",
        reason="lrkit.keras is tested on the torch backend (KERAS_BACKEND=torch)",
    ),
    # Keras's torch backend converts tensors with np.array(tensor), which NumPy 2 warns about
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"),
]


# -- helpers -----------------------------------------------------------------------------------
def _data(n: int = 64, d: int = 6, classes: int = 3, seed: int = 0) -> tuple[Any, Any]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0.5).astype("int64")
    return x, y % classes


def _classifier(optimizer: Any, d: int = 6, seed: int = 0, **compile_kw: Any) -> Any:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [keras.Input((d,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)]
    )
    model.compile(
        optimizer,
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
        **compile_kw,
    )
    return model


def _f32(values: list[float]) -> list[float]:
    """What a float32 learning-rate variable holds for each value."""
    return [float(np.float32(v)) for v in values]


def _state(model: Any) -> list[tuple[str, bytes, str]]:
    """Every variable of the model, its optimizer and its metrics, bit for bit."""
    variables = [*model.variables, *model.optimizer.variables, *model.metrics_variables]
    return [
        (v.path, keras.ops.convert_to_numpy(v.value).tobytes(), str(v.dtype)) for v in variables
    ]


def _global_rngs() -> tuple[Any, ...]:
    return random.getstate(), np.random.get_state(legacy=True), torch.get_rng_state()


def _same_rngs(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    np_a, np_b = a[1], b[1]
    return (
        a[0] == b[0]
        and all(np.array_equal(u, v) for u, v in zip(np_a, np_b, strict=True))
        and torch.equal(a[2], b[2])
    )


class _Recorder(keras.callbacks.Callback):  # type: ignore[misc]
    """Records the kernel of the first layer, the optimizer's slots and hyperparameters before
    each batch and the kernel after it (runs after the lrkit callback)."""

    def __init__(self, attribute: str) -> None:
        super().__init__()
        self.attribute = attribute
        self.before: list[dict[str, Any]] = []
        self.after: list[np.ndarray] = []

    def _kernel(self) -> np.ndarray:
        return np.array(keras.ops.convert_to_numpy(self.model.layers[0].kernel), dtype=np.float64)

    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        opt = self.model.optimizer
        slots = {
            v.path.rsplit("_", 1)[-1]: np.array(keras.ops.convert_to_numpy(v), dtype=np.float64)
            for v in opt.variables
            if "kernel" in v.path
        }
        self.before.append(
            {
                "kernel": self._kernel(),
                "slots": slots,
                "lr": float(keras.ops.convert_to_numpy(opt.learning_rate)),
                "hyper": float(getattr(opt, self.attribute)),
                "iterations": int(keras.ops.convert_to_numpy(opt.iterations)),
            }
        )

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.after.append(self._kernel())


def _linear_problem(seed: int = 0) -> tuple[Any, np.ndarray, np.ndarray]:
    """A bias-free linear model with MSE, whose gradient is known in closed form."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(24, 3)).astype("float32")
    y = rng.normal(size=(24, 2)).astype("float32")
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, use_bias=False)])
    return model, x, y


def _mse_grad(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """d/dW of mean((xW - y)^2) over the batch and the outputs (Keras's "mse")."""
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    return 2.0 * x64.T @ (x64 @ w - y64) / y64.size


def _adam_step(
    w: Any, m: Any, v: Any, g: Any, lr: float, b1: float, b2: float, eps: float, k: int
) -> Any:
    """Keras's Adam update at iteration ``k`` (from 1), bias-corrected with the current beta_1."""
    m1 = b1 * m + (1 - b1) * g
    v1 = b2 * v + (1 - b2) * g * g
    alpha = lr * math.sqrt(1 - b2**k) / (1 - b1**k)
    return w - alpha * m1 / (np.sqrt(v1) + eps)


# -- import and packaging ----------------------------------------------------------------------
def test_import_lrkit_does_not_import_keras() -> None:
    code = 'import lrkit, sys; assert "keras" not in sys.modules, "lrkit imported keras"'
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_missing_extra_names_it() -> None:
    code = (
        "import sys; sys.modules['keras'] = None\n"
        "try:\n"
        "    import lrkit.keras\n"
        "except ImportError as e:\n"
        "    print(e)\n"
        "else:\n"
        "    raise SystemExit('no ImportError')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True, timeout=120
    )
    assert 'pip install "lrkit[keras]"' in out.stdout


def test_a_missing_backend_says_to_choose_torch() -> None:
    if importlib.util.find_spec("jax") is not None:
        pytest.skip("jax is installed")
    code = (
        "try:\n"
        "    import lrkit.keras\n"
        "except ImportError as e:\n"
        "    print(e)\n"
        "else:\n"
        "    raise SystemExit('no ImportError')\n"
    )
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    out = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert "KERAS_BACKEND=torch" in out.stdout


# -- CyclicLR ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mode", "gamma", "scale"),
    [
        ("triangular", 1.0, lambda cycle, it: np.ones_like(it)),
        ("triangular2", 1.0, lambda cycle, it: 1.0 / 2.0 ** (cycle - 1)),
        ("exp_range", 0.95, lambda cycle, it: 0.95**it),
    ],
)
def test_cyclic_lr_history_is_the_cyclic_schedule(mode: str, gamma: float, scale: Any) -> None:
    x, y = _data()
    model = _classifier(keras.optimizers.Adam(0.5))
    clr = lk.CyclicLR(base_lr=0.001, max_lr=0.006, step_size=4.0, mode=mode, gamma=gamma)  # type: ignore[arg-type]
    model.fit(x, y, batch_size=16, epochs=5, shuffle=False, callbacks=[clr], verbose=0)
    n = 20  # 4 batches x 5 epochs: two and a half cycles
    expected = S.cyclic(0.001, 0.006, 4, mode=mode, gamma=gamma).table(0, n)  # type: ignore[arg-type]
    assert clr.history["lr"] == _f32(expected)
    assert clr.history["iterations"] == list(range(1, n + 1))
    assert clr.clr_iterations == n
    assert len(clr.history["loss"]) == n
    assert len(clr.history["accuracy"]) == n
    # Smith's formula as the paper writes it
    it = np.arange(n, dtype=np.float64)
    cycle = np.floor(1 + it / 8)
    xx = np.abs(it / 4 - 2 * cycle + 1)
    paper = 0.001 + 0.005 * np.maximum(0.0, 1 - xx) * scale(cycle, it)
    np.testing.assert_allclose(clr.history["lr"], paper, rtol=1e-6)
    assert clr.history["lr"][4] == pytest.approx(paper[4], rel=1e-6)  # the first peak


def test_cyclic_lr_continues_the_cycle_in_a_second_fit() -> None:
    x, y = _data()
    model = _classifier(keras.optimizers.SGD(0.1))
    clr = lk.CyclicLR(base_lr=0.01, max_lr=0.05, step_size=6)
    model.fit(x, y, batch_size=16, epochs=2, shuffle=False, callbacks=[clr], verbose=0)
    assert clr.clr_iterations == 8
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, callbacks=[clr], verbose=0)
    assert clr.clr_iterations == 12
    assert clr.history["lr"] == _f32(S.cyclic(0.01, 0.05, 6).table(0, 12))
    assert clr.history["iterations"] == list(range(1, 13))
    # the first batch of the second fit ran at the schedule's step 8, not at base_lr again
    assert clr.history["lr"][8] == pytest.approx(0.01 + 0.04 * 4 / 6, rel=1e-6)


def test_a_model_saved_and_loaded_continues_its_one_cycle(tmp_path: Any) -> None:
    x, y = _data()
    full = S.one_cycle(0.05, 16, momentum=None).lr.table(0, 16)  # 4 batches x 4 epochs
    model = _classifier(keras.optimizers.SGD(0.1, momentum=0.9))
    first = lk.OneCycle(0.05, 16, momentum=None)
    model.fit(x, y, batch_size=16, epochs=2, shuffle=False, callbacks=[first], verbose=0)
    model.save(tmp_path / "half.keras")
    restored = keras.models.load_model(tmp_path / "half.keras")
    second = lk.OneCycle(0.05, 16, momentum=None)  # a new callback, as after a restart
    restored.fit(x, y, batch_size=16, epochs=2, shuffle=False, callbacks=[second], verbose=0)
    assert first.history["lr"] == _f32(full[:8])
    assert second.history["lr"] == _f32(full[8:])
    assert second.history["iterations"] == list(range(9, 17))


def test_backup_and_restore_resumes_the_schedule_after_a_crash(tmp_path: Any) -> None:
    x, y = _data()
    full = S.one_cycle(0.05, 16, momentum=None).lr.table(0, 16)

    class Crash(keras.callbacks.Callback):  # type: ignore[misc]
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            if epoch == 2:
                raise RuntimeError("the machine went away")

    def run(*extra: Any) -> Any:
        model = _classifier(keras.optimizers.SGD(0.1, momentum=0.9))
        sched = lk.OneCycle(0.05, 16, momentum=None)
        backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
        callbacks = [sched, backup, *extra]  # the schedule before the restore, on purpose
        model.fit(x, y, batch_size=16, epochs=4, shuffle=False, callbacks=callbacks, verbose=0)
        return sched

    with pytest.raises(RuntimeError, match="went away"):
        run(Crash())
    resumed = run()
    assert resumed.history["lr"] == _f32(full[8:])
    assert resumed.history["iterations"] == list(range(9, 17))


class _Between(keras.callbacks.Callback):  # type: ignore[misc]
    """Placed after the lrkit callback: what the optimizer holds before each batch (the value
    the batch trains with), after each batch and at the end of each epoch, as
    ``(iterations, learning rate, beta_1)``; at epoch end it also puts the learning rate into
    the logs, as TensorBoard and LearningRateScheduler do, for the CSVLogger after it."""

    def __init__(self) -> None:
        super().__init__()
        self.begin: list[tuple[int, float, float]] = []
        self.end: list[tuple[int, float, float]] = []
        self.epoch_end: list[tuple[int, float, float]] = []

    def _now(self) -> tuple[int, float, float]:
        opt = self.model.optimizer
        return (
            int(keras.ops.convert_to_numpy(opt.iterations)),
            float(keras.ops.convert_to_numpy(opt.learning_rate)),
            float(opt.beta_1),
        )

    def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
        self.begin.append(self._now())

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        self.end.append(self._now())

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self.epoch_end.append(self._now())
        if logs is not None:
            logs["learning_rate"] = self.epoch_end[-1][1]


@pytest.mark.parametrize("kind", ["CyclicLR", "OneCycle", "ScheduleCallback"])
def test_between_batches_the_optimizer_holds_the_next_batchs_values(
    kind: str, tmp_path: Any
) -> None:
    """As the original CyclicLR: at the end of batch n (and so at epoch end) the optimizer holds
    the values of batch n + 1, schedule(iterations); each batch still trains with
    schedule(step), momentum included."""
    x, y = _data()
    n = 16  # 4 batches x 4 epochs
    lr: S.Schedule
    momentum: S.Schedule | None = None
    if kind == "CyclicLR":
        cb: Any = lk.CyclicLR(base_lr=0.001, max_lr=0.006, step_size=3)
        lr = S.cyclic(0.001, 0.006, 3)
    elif kind == "OneCycle":
        cb = lk.OneCycle(0.01, n, momentum=(0.95, 0.6))
        hyper = S.one_cycle(0.01, n, momentum=(0.95, 0.6))
        lr, momentum = hyper.lr, hyper.momentum
    else:
        lr, momentum = S.warmup(S.cosine(0.02, 10, end=0.001), 3), S.linear(0.9, 0.5, 14)
        cb = lk.ScheduleCallback(lr, momentum=momentum)
    model = _classifier(keras.optimizers.Adam(0.5, beta_1=0.8))
    between = _Between()
    csv = keras.callbacks.CSVLogger(str(tmp_path / "log.csv"))
    model.fit(x, y, batch_size=16, epochs=4, shuffle=False, callbacks=[cb, between, csv], verbose=0)

    def beta(t: int) -> float:
        return 0.8 if momentum is None else momentum(t)

    # each batch trains with the schedule's value at its step, as before
    assert between.begin == [(t, float(np.float32(lr(t))), beta(t)) for t in range(n)]
    assert cb.history["lr"] == _f32(lr.table(0, n))
    if momentum is not None:
        assert cb.history["momentum"] == momentum.table(0, n)
    # after each batch and at each epoch's end: the next batch's values
    assert between.end == [(t, float(np.float32(lr(t))), beta(t)) for t in range(1, n + 1)]
    ends = [4 * (e + 1) for e in range(4)]
    assert between.epoch_end == [(t, float(np.float32(lr(t))), beta(t)) for t in ends]
    assert [between.end[t - 1] for t in ends] == between.epoch_end
    assert between.end[0][1] != between.begin[0][1]  # the schedule really moves
    rows = (tmp_path / "log.csv").read_text().splitlines()
    column = rows[0].split(",").index("learning_rate")
    logged = [float(row.split(",")[column]) for row in rows[1:]]
    assert logged == pytest.approx([float(np.float32(lr(t))) for t in ends], rel=1e-6)


def test_a_model_saved_during_fit_holds_the_next_batchs_values(tmp_path: Any) -> None:
    """A checkpoint written after batch 6 (ModelCheckpoint after the schedule) holds the learning
    rate and beta_1 of batch 6; loaded, it trains its next batch with them, and with a new
    callback the run goes on with the LRs of the uninterrupted run."""
    x, y = _data()
    hyper = S.one_cycle(0.02, 16, momentum=(0.95, 0.6))
    assert hyper.momentum is not None
    full = _f32(hyper.lr.table(0, 16))

    model = _classifier(keras.optimizers.Adam(0.5))
    first = lk.OneCycle(0.02, 16, momentum=(0.95, 0.6))
    save = keras.callbacks.ModelCheckpoint(str(tmp_path / "mid-{epoch}.keras"), save_freq=6)
    model.fit(x, y, batch_size=16, epochs=4, shuffle=False, callbacks=[first, save], verbose=0)
    assert first.history["lr"] == full

    restored = keras.models.load_model(tmp_path / "mid-2.keras")  # saved after batch 6
    opt = restored.optimizer
    assert int(keras.ops.convert_to_numpy(opt.iterations)) == 6
    assert float(keras.ops.convert_to_numpy(opt.learning_rate)) == full[6]
    assert opt.beta_1 == hyper.momentum(6)

    plain = keras.models.load_model(tmp_path / "mid-2.keras")
    used = _Between()
    plain.fit(x[:16], y[:16], batch_size=16, epochs=1, callbacks=[used], verbose=0)
    assert used.begin == [(6, full[6], hyper.momentum(6))]  # no lrkit callback: batch 6's values

    second = lk.OneCycle(0.02, 16, momentum=(0.95, 0.6))
    rest = _Between()
    restored.fit(x, y, batch_size=16, epochs=2, shuffle=False, callbacks=[second, rest], verbose=0)
    assert first.history["lr"][:6] + second.history["lr"] == full[:14]
    assert [b[1] for b in rest.begin] == full[6:14]
    assert second.history["momentum"] == hyper.momentum.table(6, 14)
    assert rest.end[-1] == (14, full[14], hyper.momentum(14))


@pytest.mark.parametrize("scale_mode", ["cycle", "iterations"])
def test_cyclic_lr_custom_scale_fn(scale_mode: str) -> None:
    def fn(v: float) -> float:
        return 1.0 / (1.0 + 0.1 * v)

    x, y = _data()
    model = _classifier(keras.optimizers.Adam(0.1))
    clr = lk.CyclicLR(0.002, 0.004, 3, scale_fn=fn, scale_mode=scale_mode)  # type: ignore[arg-type]
    model.fit(x, y, batch_size=16, epochs=3, shuffle=False, callbacks=[clr], verbose=0)
    expected = S.cyclic(0.002, 0.004, 3, scale_fn=fn, scale_mode=scale_mode).table(0, 12)  # type: ignore[arg-type]
    assert clr.history["lr"] == _f32(expected)
    assert clr.scale_mode == scale_mode


def test_cyclic_lr_signature_of_the_original() -> None:
    clr = lk.CyclicLR()
    assert (clr.base_lr, clr.max_lr, clr.step_size, clr.mode, clr.gamma) == (
        0.001,
        0.006,
        2000.0,
        "triangular",
        1.0,
    )
    assert clr.schedule == S.cyclic(0.001, 0.006, 2000)
    # as in the original, scale_mode only matters for a custom scale_fn: exp_range scales by
    # gamma^iterations even with the default scale_mode="cycle"
    exp = lk.CyclicLR(mode="exp_range", gamma=0.99994)
    assert exp.schedule == S.exp_range(0.001, 0.006, 2000, 0.99994)
    with pytest.raises(ValueError, match="whole number of batches"):
        lk.CyclicLR(step_size=2.5)
    with pytest.raises(ValueError, match="peak"):
        lk.CyclicLR(base_lr=0.01, max_lr=0.001)


# -- momentum: beta_1 and SGD's momentum change the update -------------------------------------
def test_one_cycle_cycles_adams_beta_1_into_the_update() -> None:
    model, x, y = _linear_problem()
    peak, total = 0.05, 9
    model.compile(keras.optimizers.Adam(learning_rate=peak), loss="mse")
    # start and end high enough that every update stands far above float32 rounding
    cycle = {"start": 0.02, "end": 0.01, "momentum": (0.95, 0.6)}
    cb = lk.OneCycle(peak, total, **cycle)  # type: ignore[arg-type]
    rec = _Recorder("beta_1")
    model.fit(x, y, batch_size=8, epochs=3, shuffle=False, callbacks=[cb, rec], verbose=0)
    hyper = S.one_cycle(peak, total, **cycle)  # type: ignore[arg-type]
    assert hyper.momentum is not None
    assert [r["hyper"] for r in rec.before] == hyper.momentum.table(0, total)
    assert cb.history["momentum"] == hyper.momentum.table(0, total)
    assert cb.history["lr"] == _f32(hyper.lr.table(0, total))
    assert len({r["hyper"] for r in rec.before}) > 3  # beta_1 really moves

    eps, b2 = model.optimizer.epsilon, model.optimizer.beta_2
    for t in range(1, total):  # step 0 has m = v = 0, where beta_1 cancels out of the update
        r, w_after = rec.before[t], rec.after[t]
        w, m, v = r["kernel"], r["slots"]["momentum"], r["slots"]["velocity"]
        lo = 8 * (t % 3)
        g = _mse_grad(w, x[lo : lo + 8], y[lo : lo + 8])
        k = r["iterations"] + 1
        assert k == t + 1

        expected = _adam_step(w, m, v, g, r["lr"], r["hyper"], b2, eps, k)
        np.testing.assert_allclose(w_after - w, expected - w, rtol=1e-4, atol=1e-7)
        # a fixed beta_1 = 0.9 would have given a clearly different update
        fixed = _adam_step(w, m, v, g, r["lr"], 0.9, b2, eps, k)
        assert np.max(np.abs(fixed - expected)) > 100 * np.max(np.abs(w_after - expected))


def test_one_cycle_cycles_sgd_momentum_into_the_update() -> None:
    model, x, y = _linear_problem(seed=1)
    model.compile(keras.optimizers.SGD(learning_rate=0.05, momentum=0.9), loss="mse")
    cycle = {"start": 0.02, "end": 0.01, "momentum": (0.95, 0.5)}
    cb = lk.OneCycle(0.05, 6, **cycle)  # type: ignore[arg-type]
    rec = _Recorder("momentum")
    model.fit(x, y, batch_size=12, epochs=3, shuffle=False, callbacks=[cb, rec], verbose=0)
    hyper = S.one_cycle(0.05, 6, **cycle)  # type: ignore[arg-type]
    assert hyper.momentum is not None
    assert [r["hyper"] for r in rec.before] == hyper.momentum.table(0, 6)
    for t in range(1, 6):
        r = rec.before[t]
        w, buf = r["kernel"], r["slots"]["momentum"]
        lo = 12 * (t % 2)
        g = _mse_grad(w, x[lo : lo + 12], y[lo : lo + 12])
        expected = w + (r["hyper"] * buf - r["lr"] * g)  # velocity = mu·v - lr·g; w += velocity
        np.testing.assert_allclose(rec.after[t] - w, expected - w, rtol=1e-4, atol=1e-7)
        fixed = w + (0.9 * buf - r["lr"] * g)
        assert np.max(np.abs(fixed - expected)) > 100 * np.max(np.abs(rec.after[t] - expected))


def test_momentum_is_refused_where_it_would_change_nothing() -> None:
    x, y = _data()
    model = _classifier(keras.optimizers.SGD(0.1))
    with pytest.raises(ValueError, match="momentum=0"):
        model.fit(x, y, epochs=1, callbacks=[lk.OneCycle(0.1, 10)], verbose=0)
    # the learning rate alone works with any optimizer
    cb = lk.OneCycle(0.1, 8, momentum=None)
    model.fit(x, y, batch_size=16, epochs=2, shuffle=False, callbacks=[cb], verbose=0)
    assert cb.history["lr"] == _f32(S.one_cycle(0.1, 8).lr.table(0, 8))
    assert "momentum" not in cb.history

    compiled = _classifier(keras.optimizers.Adam(0.01), jit_compile=True)
    with pytest.raises(ValueError, match="jit_compile=False"):
        compiled.fit(x, y, epochs=1, callbacks=[lk.OneCycle(0.1, 10)], verbose=0)

    adagrad = _classifier(keras.optimizers.Adagrad(0.01))
    with pytest.raises(ValueError, match="neither beta_1 nor momentum"):
        adagrad.fit(x, y, epochs=1, callbacks=[lk.OneCycle(0.1, 10)], verbose=0)


def test_an_optimizer_with_a_keras_schedule_is_refused() -> None:
    x, y = _data()
    decay = keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=10, decay_rate=0.9)
    model = _classifier(keras.optimizers.Adam(decay))
    with pytest.raises(TypeError, match="float learning rate"):
        model.fit(x, y, epochs=1, callbacks=[lk.CyclicLR(step_size=2)], verbose=0)
    with pytest.raises(TypeError, match="float learning rate"):
        lk.range_test(model, x, y, steps=10)


# -- ScheduleCallback --------------------------------------------------------------------------
def test_schedule_callback_drives_any_schedule_and_momentum() -> None:
    x, y = _data()
    model = _classifier(keras.optimizers.Adam(0.01))
    lr = S.warmup(S.cosine(0.02, 10, end=0.001), 3)
    mom = S.linear(0.9, 0.5, 12)
    cb = lk.ScheduleCallback(lr, momentum=mom)
    model.fit(x, y, batch_size=16, epochs=3, shuffle=False, callbacks=[cb], verbose=0)
    assert cb.step == 12
    assert cb.history["lr"] == _f32(lr.table(0, 12))
    assert cb.history["momentum"] == mom.table(0, 12)
    assert model.optimizer.beta_1 == mom(12)  # after the fit: the value a next batch would use


def test_schedule_callback_checks_its_arguments() -> None:
    with pytest.raises(TypeError, match="lrkit schedule"):
        lk.ScheduleCallback(0.1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="already schedules the momentum"):
        lk.ScheduleCallback(S.one_cycle(0.1, 10), momentum=S.constant(0.9))
    x, y = _data()
    model = _classifier(keras.optimizers.Adam(0.01))
    bad = lk.ScheduleCallback(S.constant(0.01), momentum=S.linear(0.9, 1.5, 2))
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        model.fit(x, y, batch_size=16, epochs=1, callbacks=[bad], verbose=0)


# -- range test --------------------------------------------------------------------------------
def _regularized_model() -> Any:
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dropout(0.3),
            keras.layers.BatchNormalization(),
            keras.layers.Dense(3),
        ]
    )
    model.compile(
        keras.optimizers.Adam(0.003),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def test_range_test_restores_every_variable() -> None:
    x, y = _data(n=96)
    model = _regularized_model()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)  # non-zero slots, iterations > 0
    before, rngs = _state(model), _global_rngs()
    changed: list[bool] = []

    def progress(done: int, total: int, lr: float, loss: float) -> None:
        changed.append(_state(model) != before)

    result = lk.range_test(model, x, y, batch_size=16, steps=25, progress=progress)
    assert changed and all(changed)  # the sweep did train the model
    after = _state(model)
    assert [p for p, *_ in after] == [p for p, *_ in before]
    for (path, a, dtype_a), (_, b, dtype_b) in zip(before, after, strict=True):
        assert a == b and dtype_a == dtype_b, f"{path} changed"
    assert _same_rngs(rngs, _global_rngs())
    assert isinstance(result, RangeTestResult)
    n = len(result.lrs)
    np.testing.assert_array_equal(result.lrs, lr_sequence(1e-7, 10.0, 25)[:n])
    # the model trains on as if no test had run
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == np.float32(0.003)


def test_range_test_restores_after_an_interrupt_and_an_error() -> None:
    x, y = _data(n=96)
    model = _regularized_model()
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    before = _state(model)

    def interrupt(done: int, total: int, lr: float, loss: float) -> None:
        if done == 5:
            raise KeyboardInterrupt

    result = lk.range_test(model, x, y, batch_size=16, steps=20, progress=interrupt)
    assert result.stop_reason == "interrupted"
    assert len(result.losses) == 5
    assert _state(model) == before

    def fail(done: int, total: int, lr: float, loss: float) -> None:
        if done == 7:
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom") as info:
        lk.range_test(model, x, y, batch_size=16, steps=20, progress=fail)
    partial = info.value.range_test_result  # type: ignore[attr-defined]
    assert partial.stop_reason == "error"
    assert len(partial.losses) == 7
    assert _state(model) == before


def test_range_test_is_the_pytorch_sweep() -> None:
    """The same linear model, weights, data and SGD in Keras and PyTorch give the same curve,
    stop reason, suggestion and bounds."""
    rng = np.random.default_rng(5)
    w_true = rng.normal(size=(4, 1))
    xs = rng.normal(size=(40, 4)).astype("float32")
    ys = (xs @ w_true + 0.1 * rng.normal(size=(40, 1))).astype("float32")
    batches = [(xs[i : i + 8], ys[i : i + 8]) for i in range(0, 40, 8)]  # 5 batches, reused
    kernel = (0.1 * rng.normal(size=(4, 1))).astype("float32")

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.layers[0].kernel.assign(kernel)
    model.layers[0].bias.assign(np.zeros(1, "float32"))
    model.compile(keras.optimizers.SGD(0.01), loss="mse")
    kw: dict[str, Any] = {"start_lr": 1e-4, "end_lr": 10.0, "steps": 60}
    ours = lk.range_test(model, batches, **kw)

    torch_model = nn.Linear(4, 1)
    with torch.no_grad():
        torch_model.weight.copy_(torch.from_numpy(kernel.T.copy()))
        torch_model.bias.zero_()
    opt = torch.optim.SGD(torch_model.parameters(), lr=0.01)
    torch_batches = [(torch.from_numpy(a), torch.from_numpy(b)) for a, b in batches]
    ref = lrkit.range_test(torch_model, opt, torch_batches, nn.MSELoss(), **kw)

    assert ours.stop_reason == ref.stop_reason == "diverged"
    assert len(ours.losses) == len(ref.losses) < 60
    np.testing.assert_array_equal(ours.lrs, ref.lrs)
    np.testing.assert_allclose(ours.losses, ref.losses, rtol=1e-4)
    np.testing.assert_allclose(ours.smoothed, ref.smoothed, rtol=1e-4)
    assert ours.suggestion is not None and ref.suggestion is not None
    assert ours.suggestion == pytest.approx(ref.suggestion, rel=1e-3)
    assert ours.bounds("cyclic") == pytest.approx(ref.bounds("cyclic"), rel=1e-3)
    same = RangeTestResult.build(
        lrs=ours.lrs, losses=ours.losses, stop_reason=ours.stop_reason, start_lr=1e-4, end_lr=10.0
    )
    assert same.suggestion == ours.suggestion


def test_range_test_result_plots(tmp_path: Any) -> None:
    pytest.importorskip("matplotlib")
    x, y = _data(n=128)
    model = _classifier(keras.optimizers.Adam(0.001))
    result = lk.range_test(model, x, y, batch_size=16, start_lr=1e-5, end_lr=10.0, steps=40)
    result.plot(tmp_path / "keras_range_test.png")
    assert (tmp_path / "keras_range_test.png").stat().st_size > 0
    assert result.mode == "exp" and result.start_lr == 1e-5 and result.end_lr == 10.0


def test_range_test_checks_its_arguments() -> None:
    x, y = _data()
    unbuilt = keras.Sequential([keras.layers.Dense(3)])
    unbuilt.compile("adam", "mse")
    with pytest.raises(ValueError, match="build the model"):
        lk.range_test(unbuilt, x, y)
    uncompiled = keras.Sequential([keras.Input((6,)), keras.layers.Dense(3)])
    with pytest.raises(ValueError, match="compiled model"):
        lk.range_test(uncompiled, x, y)
    model = _classifier(keras.optimizers.Adam(0.01))
    with pytest.raises(ValueError, match="y is None"):
        lk.range_test(model, x)
    with pytest.raises(ValueError, match="steps must be an int >= 10"):
        lk.range_test(model, x, y, steps=5)
    with pytest.raises(ValueError, match="samples"):
        lk.range_test(model, x, y[:10])


# -- end to end: the Keras tutorial's experiment in miniature ----------------------------------
@pytest.fixture(scope="module")
def mnist1d() -> dict[str, np.ndarray]:
    mnist1d_data = pytest.importorskip("mnist1d.data")
    state = np.random.get_state()
    try:
        ds = mnist1d_data.make_dataset(mnist1d_data.get_dataset_args())  # generated, offline
    finally:
        np.random.set_state(state)
    return {k: np.asarray(ds[k]) for k in ("x", "y", "x_test", "y_test")}


def _mlp() -> Any:
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((40,)), keras.layers.Dense(100, activation="relu"), keras.layers.Dense(10)]
    )
    model.compile(
        keras.optimizers.Adam(0.001),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


@pytest.mark.slow
def test_tutorial_in_miniature_adam_vs_cyclic_lr_with_ten_times_the_batch(
    mnist1d: dict[str, np.ndarray],
) -> None:
    """The Keras tutorial's experiment (MNIST, MLP 784-784-10: Adam at a fixed LR with batch 200
    against Adam with the triangular CyclicLR and batch 2000) in miniature: mnist1d's 4000
    training sequences, MLP 40-100-10, Adam at 1e-3 with batch 100 against CyclicLR with batch
    1000 for the same 10 epochs, a tenth of the updates. The tutorial's bounds (0.001-0.006)
    were set for its MNIST model; here they come from lrkit.keras.range_test, as Smith
    recommends."""
    x, y = mnist1d["x"].astype("float32"), mnist1d["y"].astype("int64")
    xt, yt = mnist1d["x_test"].astype("float32"), mnist1d["y_test"].astype("int64")
    mu, sd = x.mean(axis=0), x.std(axis=0)
    x, xt = (x - mu) / sd, (xt - mu) / sd
    epochs, batch = 10, 100

    fixed = _mlp()
    fixed.fit(x, y, batch_size=batch, epochs=epochs, verbose=0)
    fixed_acc = fixed.evaluate(xt, yt, verbose=0, return_dict=True)["accuracy"]

    cyc = _mlp()
    found = lk.range_test(cyc, x, y, batch_size=10 * batch, start_lr=1e-4, end_lr=1.0, steps=30)
    base, peak = found.bounds("cyclic")
    steps_per_epoch = math.ceil(len(x) / (10 * batch))  # 4
    n = epochs * steps_per_epoch  # 40 updates: two full cycles
    clr = lk.CyclicLR(base_lr=base, max_lr=peak, step_size=n // 4)
    cyc.fit(x, y, batch_size=10 * batch, epochs=epochs, callbacks=[clr], verbose=0)
    cyc_acc = cyc.evaluate(xt, yt, verbose=0, return_dict=True)["accuracy"]

    assert clr.history["lr"] == _f32(S.cyclic(base, peak, n // 4).table(0, n))
    assert clr.history["iterations"] == list(range(1, n + 1))
    assert fixed_acc > 0.35 and cyc_acc > 0.35  # chance is 0.1
    # a tenth of the updates for at least the accuracy of the fixed LR (measured: 0.40, 0.42)
    assert cyc_acc > fixed_acc - 0.03, (fixed_acc, cyc_acc)
