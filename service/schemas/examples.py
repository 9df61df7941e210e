"""Request examples shown in /docs: the course's networks, ready to run.

`dataset_id` accepts a dataset's name as well as its id, so these work as they stand after
uploading the course files with `name=concrete` and `name=mnist`.
"""

from typing import Any

CONCRETE_REGRESSION: dict[str, Any] = {
    "dataset_id": "concrete",
    "task": "regression",
    "target": "Strength",
    "preprocessing": {"normalize": True, "missing": "error"},
    "network": {
        "layers": [
            {"type": "dense", "units": 50, "activation": "relu"},
            {"type": "dense", "units": 50, "activation": "relu"},
        ]
    },
    "training": {
        "optimizer": {"name": "adam", "learning_rate": 0.001},
        "loss": "mean_squared_error",
        "metrics": ["mae"],
        "epochs": 100,
        "batch_size": 32,
        "validation_split": 0.3,
        "seed": 42,
    },
}

MNIST_CLASSIFIER: dict[str, Any] = {
    "dataset_id": "mnist",
    "task": "classification",
    "target": "y",
    "network": {
        "layers": [
            {"type": "flatten"},
            {"type": "dense", "units": 784, "activation": "relu"},
            {"type": "dense", "units": 100, "activation": "relu"},
        ],
        "output_activation": "softmax",
    },
    "training": {
        "optimizer": {"name": "adam"},
        "loss": "categorical_crossentropy",
        "metrics": ["accuracy"],
        "epochs": 10,
        "batch_size": 32,
        "validation_split": 0.0,
        "seed": 42,
    },
}

PENGUINS_CLASSIFIER: dict[str, Any] = {
    "dataset_id": "penguins",
    "task": "classification",
    "target": "species",
    "preprocessing": {"normalize": True, "missing": "drop"},
    "network": {"layers": [{"type": "dense", "units": 16, "activation": "relu"}]},
    "training": {"epochs": 50, "metrics": ["accuracy"], "test_split": 0.2, "seed": 42},
}

CONCRETE_PREDICT: dict[str, Any] = {
    "instances": [
        {
            "Cement": 540.0,
            "Blast Furnace Slag": 0.0,
            "Fly Ash": 0.0,
            "Water": 162.0,
            "Superplasticizer": 2.5,
            "Coarse Aggregate": 1040.0,
            "Fine Aggregate": 676.0,
            "Age": 28,
        }
    ]
}

# The course's final assignment, part B: Dense(10, relu) -> Dense(1), normalized inputs, 50
# epochs, a fresh model on each of 50 random 70/30 train/test splits.
CONCRETE_REPEATED: dict[str, Any] = {
    "dataset_id": "concrete",
    "task": "regression",
    "target": "Strength",
    "preprocessing": {"normalize": True},
    "network": {"layers": [{"type": "dense", "units": 10, "activation": "relu"}]},
    "training": {
        "optimizer": {"name": "adam"},
        "loss": "mean_squared_error",
        "epochs": 50,
        "validation_split": 0.0,
        "test_split": 0.3,
        "seed": 42,
    },
    "repeats": 50,
}

CONCRETE_SWEEP: dict[str, Any] = {
    "base": {
        "dataset_id": "concrete",
        "task": "regression",
        "target": "Strength",
        "network": {"layers": [{"type": "dense", "units": 10, "activation": "relu"}]},
        "training": {"epochs": 50, "validation_split": 0.2, "test_split": 0.2, "seed": 42},
    },
    "search": "grid",
    "parameters": {
        "network.layers[*].units": [10, 50],
        "training.optimizer.learning_rate": [0.001, 0.01],
    },
    "metric": "val_loss",
    "direction": "min",
}
