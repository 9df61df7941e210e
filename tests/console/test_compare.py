"""What the compare page computes: request fields as dotted paths, and each job's best epoch."""

from service.console.compare import best_epoch, flatten


def test_flatten_names_every_leaf_of_a_request() -> None:
    flat = flatten(
        {
            "training": {"optimizer": {"learning_rate": 0.01}, "metrics": ["mae"]},
            "network": {"layers": [{"units": 50}, {"units": 10}]},
        }
    )

    assert flat == {
        "training.optimizer.learning_rate": 0.01,
        "training.metrics": ["mae"],
        "network.layers[0].units": 50,
        "network.layers[1].units": 10,
        "network.layers.length": 2,
    }


def test_best_epoch_is_lowest_for_losses_and_highest_for_accuracy() -> None:
    history = [
        {"epoch": 1, "metrics": {"val_loss": 3.0, "val_accuracy": 0.5}},
        {"epoch": 2, "metrics": {"val_loss": 1.0, "val_accuracy": 0.7}},
        {"epoch": 3, "metrics": {"val_loss": 2.0, "val_accuracy": 0.9}},
    ]

    assert best_epoch(history, "val_loss") == (2, 1.0)
    assert best_epoch(history, "val_accuracy") == (3, 0.9)
    assert best_epoch(history, "mae") is None
