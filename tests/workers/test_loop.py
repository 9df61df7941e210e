"""The training loop (`workers.loop`): Keras' numbers, stopping mid-epoch, and kept loops that
train a later job of the same shape exactly as a new one would."""

from typing import Any

import keras
import numpy as np
import pytest
import tensorflow as tf

from workers import loop as loops


@pytest.fixture(autouse=True)
def _no_kept_loops() -> Any:
    loops.forget()
    yield
    loops.forget()


def _data(rows: int, seed: int = 0) -> tuple[tf.Tensor, tf.Tensor]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(rows, 4)).astype("float32")
    y = (x @ np.array([[1.0], [-2.0], [0.5], [3.0]], dtype="float32")) + 0.1
    return tf.constant(x), tf.constant(y)


def _model(units: int = 8, dropout: float = 0.0, learning_rate: float = 0.01) -> keras.Model:
    layers: list[Any] = [keras.Input((4,)), keras.layers.Dense(units, activation="relu")]
    if dropout:
        layers.append(keras.layers.Dropout(dropout))
    model = keras.Sequential([*layers, keras.layers.Dense(1)])
    model.compile(keras.optimizers.Adam(learning_rate), "mean_squared_error", metrics=["mae"])
    return model


def _train(key: str, epochs: int = 3, **model: Any) -> tuple[dict[str, list[float]], bool]:
    loops.seed(7)
    train, validation = _data(200), _data(50, seed=1)
    loop, reused = loops.kept(key, _model(**model), train, validation, 16, 7)
    return loop.fit(epochs, []).history, reused


def test_logs_are_kerass_train_and_validation_metrics() -> None:
    loops.seed(3)
    model = _model()
    train, validation = _data(100), _data(40, seed=1)
    loop = loops.Loop(model, train, validation, 16, 3)

    history = loop.fit(2, [])

    assert set(history.history) == {"loss", "mae", "val_loss", "val_mae"}
    assert history.epoch == [0, 1]
    evaluated = model.evaluate(*validation, batch_size=7, verbose=0, return_dict=True)
    assert history.history["val_loss"][-1] == pytest.approx(evaluated["loss"], rel=1e-5)
    assert history.history["val_mae"][-1] == pytest.approx(evaluated["mae"], rel=1e-5)
    assert int(model.optimizer.iterations.numpy()) == 2 * 7  # ceil(100 / 16) steps per epoch


def test_a_kept_loop_trains_exactly_as_a_new_one() -> None:
    first, reused_first = _train("k", dropout=0.3)
    again, reused_again = _train("k", dropout=0.3)
    loops.forget()
    fresh, reused_fresh = _train("k", dropout=0.3)

    assert (reused_first, reused_again, reused_fresh) == (False, True, False)
    assert again == first == fresh  # weights, optimizer state, dropout's random state all reset


def test_a_kept_loop_takes_the_new_jobs_learning_rate() -> None:
    _train("k", learning_rate=0.01)
    slow, reused = _train("k", learning_rate=1e-6)
    loops.forget()
    expected, _ = _train("k", learning_rate=1e-6)

    assert reused and slow == expected


def test_a_loop_of_another_shape_is_not_reused() -> None:
    _train("k", units=8)
    _, reused = _train("k", units=9)  # same key, different variables: traced anew
    assert not reused


def test_a_process_keeps_its_last_few_loops_without_their_rows() -> None:
    for n in range(loops.LOOPS_KEPT + 1):
        _train(f"k{n}", epochs=1)
    assert not _train("k0", epochs=1)[1]  # the oldest went
    assert _train(f"k{loops.LOOPS_KEPT}", epochs=1)[1]

    loops.release()
    assert all(loop.train is None and loop.validation is None for loop in loops.kept_loops())


def test_shape_key_sees_every_value_of_an_array() -> None:
    mean = np.zeros(5000)
    changed = mean.copy()
    changed[2500] = 1.0  # numpy's repr would print both as [0. 0. 0. ... 0. 0. 0.]
    assert loops.shape_key(mean) != loops.shape_key(changed)
    assert loops.shape_key(mean) == loops.shape_key(mean.copy())


def test_an_interrupt_stops_the_epoch_between_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loops, "FIRST_CALL_STEPS", 1)
    monkeypatch.setattr(loops, "CALL_SECONDS", 1e-9)  # one step per call
    loops.seed(0)
    model = _model()
    loop = loops.Loop(model, _data(160), None, 16, 0)  # 10 steps per epoch
    calls = iter(range(100))

    history = loop.fit(5, [], interrupt=lambda: next(calls) >= 3)

    assert history.epoch == []  # the first epoch never ended
    assert int(model.optimizer.iterations.numpy()) == 3


def test_an_epochs_order_depends_only_on_the_seed_and_the_epoch() -> None:
    loop = loops.Loop(_model(), _data(50), None, 16, 11)
    again = loops.Loop(_model(), _data(50), None, 8, 11)
    orders = [loop.order(epoch).numpy().tolist() for epoch in range(3)]
    assert orders == [again.order(epoch).numpy().tolist() for epoch in range(3)]
    assert orders[0] != orders[1] and sorted(orders[0]) == list(range(50))
