"""plan.resolve: a job request checked against a dataset's recorded schema, before anything runs."""

from pathlib import Path
from typing import Any

import pytest

from service.core import orm
from service.core.errors import InvalidInput
from service.formats import tabular
from service.ml import plan as plans
from service.schemas.jobs import JobCreate

DATA = Path(__file__).parents[1] / "data"
CONCRETE_FEATURES = [
    "Cement", "Blast Furnace Slag", "Fly Ash", "Water", "Superplasticizer", "Coarse Aggregate",
    "Fine Aggregate", "Age",
]  # fmt: skip


def _column(name: str, dtype: str = "float", missing: int = 0, **extra: Any) -> dict[str, Any]:
    return {"name": name, "dtype": dtype, "missing": missing, **extra}


def _labels(name: str, counts: dict[Any, int], dtype: str = "string") -> dict[str, Any]:
    values = [[value, count] for value, count in counts.items()]
    return _column(name, dtype, distinct=len(counts), values=values)


def _dataset(columns: list[dict[str, Any]], file_format: str = "csv") -> orm.Dataset:
    return orm.Dataset(
        id="d1", name="data", format=file_format, size_bytes=1, sha256="0" * 64, rows=100,
        columns=columns, storage_key="datasets/d1",
    )  # fmt: skip


def _concrete(**missing: int) -> orm.Dataset:
    names = [*CONCRETE_FEATURES, "Strength"]
    return _dataset(
        [_column(n, "integer" if n == "Age" else "float", missing.get(n, 0)) for n in names]
    )


def _penguins() -> orm.Dataset:
    return _dataset(
        [
            _labels("species", {"Adelie": 152, "Gentoo": 124, "Chinstrap": 68}),
            _labels("island", {"Biscoe": 168, "Dream": 124, "Torgersen": 52}),
            _column("bill_length_mm", missing=2),
            _column("body_mass_g", missing=2),
            _labels("sex", {"male": 168, "female": 165}) | {"missing": 11},
            _column("year", "integer"),
        ]
    )


def _mnist(x_dtype: str = "uint8") -> orm.Dataset:
    labels = {digit: 300 for digit in range(10)}
    return _dataset(
        [
            _column("x_train", x_dtype, shape=[3000, 28, 28]),
            _labels("y_train", labels, "uint8") | {"shape": [3000]},
            _column("x_test", x_dtype, shape=[1000, 28, 28]),
            _labels("y_test", labels, "uint8") | {"shape": [1000]},
        ],
        file_format="npz",
    )


def _request(task: str = "regression", target: Any = "Strength", **fields: Any) -> JobCreate:
    body: dict[str, Any] = {
        "dataset_id": "d1",
        "task": task,
        "target": target,
        "network": {"layers": [{"type": "dense", "units": 50}, {"type": "dense", "units": 50}]},
    }
    return JobCreate.model_validate(body | fields)


def test_resolve_concrete_takes_every_other_column_as_numeric_features() -> None:
    plan = plans.resolve(_request(), _concrete())

    assert [f.name for f in plan.features] == CONCRETE_FEATURES
    assert {f.kind for f in plan.features} == {"numeric"}
    assert plan.targets == ["Strength"]
    assert (plan.data, plan.output_units, plan.output_activation) == ("tabular", 1, "linear")
    assert (plan.loss, plan.metrics, plan.epochs) == ("mean_squared_error", ["mae"], 100)
    assert plan.labels is None


def test_resolve_names_inputs_safely_for_keras() -> None:
    dataset = _dataset(
        [_column("Blast Furnace Slag"), _column("a b"), _column("a_b"), _column("1st"),
         _column("%"), _column("y")]
    )  # fmt: skip

    plan = plans.resolve(_request(target="y"), dataset)

    assert [f.input for f in plan.features] == [
        "blast_furnace_slag", "a_b", "a_b_2", "f_1st", "feature",
    ]  # fmt: skip


def test_resolve_keeps_requested_features_in_order() -> None:
    plan = plans.resolve(_request(features=["Water", "Cement"]), _concrete())

    assert [f.name for f in plan.features] == ["Water", "Cement"]


def test_resolve_multi_output_regression_has_one_unit_per_target() -> None:
    plan = plans.resolve(_request(target=["Strength", "Water"]), _concrete())

    assert plan.targets == ["Strength", "Water"]
    assert plan.output_units == 2
    assert "Water" not in [f.name for f in plan.features]


def test_resolve_rejects_missing_target_naming_target_field() -> None:
    with pytest.raises(InvalidInput, match="target column 'strength' is not in the dataset") as e:
        plans.resolve(_request(target="strength"), _concrete())

    assert e.value.field == "/target"
    assert e.value.status_code == 422
    assert "Strength" in e.value.detail  # the columns are listed


def test_resolve_rejects_missing_target_in_list_naming_its_index() -> None:
    with pytest.raises(InvalidInput, match="'Slump'") as caught:
        plans.resolve(_request(target=["Strength", "Slump"]), _concrete())

    assert caught.value.field == "/target/1"


def test_resolve_rejects_missing_feature_naming_its_index() -> None:
    with pytest.raises(InvalidInput, match="feature column 'Sand' is not in the dataset") as e:
        plans.resolve(_request(features=["Cement", "Water", "Sand"]), _concrete())

    assert e.value.field == "/features/2"


def test_resolve_rejects_target_listed_as_feature() -> None:
    with pytest.raises(InvalidInput, match="'Strength' is the target") as caught:
        plans.resolve(_request(features=["Cement", "Strength"]), _concrete())

    assert caught.value.field == "/features/1"


def test_resolve_rejects_feature_listed_twice() -> None:
    with pytest.raises(InvalidInput, match="twice") as caught:
        plans.resolve(_request(features=["Cement", "Cement"]), _concrete())

    assert caught.value.field == "/features"


def test_resolve_rejects_dataset_with_only_the_target() -> None:
    with pytest.raises(InvalidInput, match="no feature columns") as caught:
        plans.resolve(_request(), _dataset([_column("Strength")]))

    assert caught.value.field == "/features"


def test_resolve_rejects_string_target_for_regression() -> None:
    with pytest.raises(InvalidInput, match="holds text, which regression cannot predict") as e:
        plans.resolve(_request(target="species"), _penguins())

    assert e.value.field == "/target"
    assert "classification" in e.value.detail


def test_resolve_rejects_one_class_target() -> None:
    dataset = _dataset([_column("x"), _labels("kind", {"cat": 40})])

    with pytest.raises(InvalidInput, match="'kind' has 1 class; classification needs") as caught:
        plans.resolve(_request("classification", "kind"), dataset)

    assert caught.value.field == "/target"


def test_resolve_rejects_target_with_too_many_classes() -> None:
    dataset = _dataset([_column("x"), _column("price", distinct=5000)])

    with pytest.raises(InvalidInput, match="is this a regression target") as caught:
        plans.resolve(_request("classification", "price"), dataset)

    assert caught.value.field == "/task"


def test_resolve_rejects_target_list_for_classification() -> None:
    with pytest.raises(InvalidInput, match="classification takes one target column") as caught:
        plans.resolve(_request("classification", ["species", "sex"]), _penguins())

    assert caught.value.field == "/target"


def test_resolve_rejects_missing_values_naming_the_columns() -> None:
    with pytest.raises(InvalidInput) as caught:
        plans.resolve(_request(), _concrete(Water=3, Strength=1))

    assert caught.value.field == "/preprocessing/missing"
    assert "Strength (1), Water (3)" in caught.value.detail
    assert "Cement" not in caught.value.detail
    assert "'drop'" in caught.value.detail and "'mean'" in caught.value.detail


def test_resolve_ignores_missing_values_in_unused_columns() -> None:
    plan = plans.resolve(_request(features=["Cement"]), _concrete(Water=3))

    assert [f.name for f in plan.features] == ["Cement"]


@pytest.mark.parametrize("missing", ["drop", "mean"])
def test_resolve_accepts_missing_values_when_handled(missing: str) -> None:
    plan = plans.resolve(_request(preprocessing={"missing": missing}), _concrete(Water=3))

    assert len(plan.features) == 8


def test_resolve_classification_has_sorted_labels_and_string_features() -> None:
    request = _request("classification", "species", preprocessing={"missing": "drop"})

    plan = plans.resolve(request, _penguins())

    assert plan.labels == ["Adelie", "Chinstrap", "Gentoo"]
    assert plan.output_units == 3
    assert (plan.output_activation, plan.loss) == ("softmax", "categorical_crossentropy")
    assert (plan.metrics, plan.epochs) == (["accuracy"], 10)
    assert [(f.name, f.kind) for f in plan.features] == [
        ("island", "string"), ("bill_length_mm", "numeric"), ("body_mass_g", "numeric"),
        ("sex", "string"), ("year", "numeric"),
    ]  # fmt: skip


def test_resolve_penguins_file_as_described_at_upload() -> None:
    frame = tabular.read_table(DATA / "penguins.csv", "csv")
    dataset = _dataset(tabular.describe(frame))
    request = _request("classification", "species", preprocessing={"missing": "drop"})

    plan = plans.resolve(request, dataset)

    assert plan.labels == ["Adelie", "Chinstrap", "Gentoo"]
    assert [f.name for f in plan.features if f.kind == "string"] == ["island", "sex"]


def test_resolve_penguins_file_rejects_missing_values_by_default() -> None:
    frame = tabular.read_table(DATA / "penguins.csv", "csv")

    with pytest.raises(InvalidInput, match=r"bill_length_mm \(2\)") as caught:
        plans.resolve(_request("classification", "species"), _dataset(tabular.describe(frame)))

    assert "sex (11)" in caught.value.detail


def test_resolve_keeps_requested_output_activation_loss_and_metrics() -> None:
    training = {"loss": "huber", "metrics": ["mse", "r2_score"], "epochs": 7}
    request = _request(network={"layers": [{"type": "dense", "units": 4}],
                                "output_activation": "softplus"}, training=training)  # fmt: skip

    plan = plans.resolve(request, _concrete())

    assert (plan.output_activation, plan.loss, plan.metrics, plan.epochs) == (
        "softplus", "huber", ["mse", "r2_score"], 7,
    )  # fmt: skip


@pytest.mark.parametrize("activation", ["softmax", "log_softmax", "sparsemax"])
def test_resolve_rejects_softmax_over_a_single_output(activation: str) -> None:
    network = {"layers": [{"type": "dense", "units": 4}], "output_activation": activation}

    with pytest.raises(InvalidInput, match="same value for every row") as caught:
        plans.resolve(_request(network=network), _concrete())

    assert caught.value.field == "/network/output_activation"


def test_resolve_accepts_softmax_over_several_outputs() -> None:
    network = {"layers": [{"type": "dense", "units": 4}], "output_activation": "softmax"}

    plan = plans.resolve(_request(target=["Strength", "Water"], network=network), _concrete())

    assert plan.output_activation == "softmax"


@pytest.mark.parametrize("loss", ["categorical_crossentropy", "binary_crossentropy"])
def test_resolve_rejects_crossentropy_loss_for_regression(loss: str) -> None:
    with pytest.raises(InvalidInput, match=f"loss '{loss}' does not fit a regression task") as e:
        plans.resolve(_request(training={"loss": loss}), _concrete())

    assert e.value.field == "/training/loss"
    assert "mean_squared_error" in e.value.detail


def test_resolve_rejects_regression_loss_for_classification() -> None:
    request = _request("classification", "species", training={"loss": "huber"})

    with pytest.raises(InvalidInput, match="does not fit a classification task") as caught:
        plans.resolve(request, _penguins())

    assert caught.value.field == "/training/loss"


def test_resolve_rejects_metric_of_the_other_task_naming_its_index() -> None:
    request = _request(training={"metrics": ["mae", "accuracy"]})

    with pytest.raises(InvalidInput, match="metric 'accuracy' does not fit a regression") as e:
        plans.resolve(request, _concrete())

    assert e.value.field == "/training/metrics/1"


def test_resolve_rejects_early_stopping_on_validation_without_validation_rows() -> None:
    training = {"validation_split": 0.0, "early_stopping": {"monitor": "val_loss"}}

    with pytest.raises(InvalidInput, match="needs validation_split > 0") as caught:
        plans.resolve(_request(training=training), _concrete())

    assert caught.value.field == "/training/early_stopping/monitor"


def test_resolve_rejects_conv2d_on_tabular_naming_the_layer() -> None:
    network = {
        "layers": [{"type": "dense", "units": 8}, {"type": "conv2d", "filters": 4}],
    }

    with pytest.raises(InvalidInput, match=r"layer 1 \(conv2d\) needs image rows") as caught:
        plans.resolve(_request(network=network), _concrete())

    assert caught.value.field == "/network/layers/1/type"
    assert caught.value.status_code == 422


def test_resolve_npz_reads_shape_pixels_and_labels() -> None:
    request = _request("classification", "y", network={"layers": [{"type": "flatten"}]})

    plan = plans.resolve(request, _mnist())

    assert plan.data == "array"
    assert plan.sample_shape == [28, 28]
    assert plan.scale_pixels is True
    assert plan.labels == list(range(10))
    assert all(type(label) is int for label in plan.labels)
    assert plan.output_units == 10
    assert [(f.name, f.input, f.kind) for f in plan.features] == [("x", "x", "numeric")]
    assert plan.targets == ["y"]


def test_resolve_npz_float_pixels_are_not_scaled() -> None:
    request = _request("classification", "y", network={"layers": [{"type": "flatten"}]})

    plan = plans.resolve(request, _mnist(x_dtype="float32"))

    assert plan.scale_pixels is False


def test_resolve_npz_accepts_its_array_names_as_target_and_features() -> None:
    request = _request("classification", "y_train", features=["x_train"],
                       network={"layers": [{"type": "flatten"}]})  # fmt: skip

    plan = plans.resolve(request, _mnist())

    assert plan.targets == ["y"]


def test_resolve_npz_rejects_a_column_name_as_target() -> None:
    with pytest.raises(InvalidInput, match="set target to 'y'") as caught:
        plans.resolve(_request("classification", "label"), _mnist())

    assert caught.value.field == "/target"


def test_resolve_npz_rejects_feature_list() -> None:
    request = _request("classification", "y", features=["pixels"])

    with pytest.raises(InvalidInput, match="leave features unset") as caught:
        plans.resolve(request, _mnist())

    assert caught.value.field == "/features"


def test_resolve_npz_rejects_label_matrix_for_classification() -> None:
    dataset = _dataset(
        [_column("x", "float32", shape=[50, 4]), _column("y", "float32", shape=[50, 3])],
        file_format="npz",
    )

    with pytest.raises(InvalidInput, match="one label per row") as caught:
        plans.resolve(_request("classification", "y"), dataset)

    assert caught.value.field == "/target"


def test_resolve_npz_regression_has_one_unit_per_target_column() -> None:
    dataset = _dataset(
        [_column("x", "float32", shape=[50, 4]), _column("y", "float32", shape=[50, 3])],
        file_format="npz",
    )

    plan = plans.resolve(_request("regression", "y"), dataset)

    assert (plan.output_units, plan.sample_shape, plan.scale_pixels) == (3, [4], False)


def test_resolve_npz_accepts_conv2d_on_images() -> None:
    network = {
        "layers": [
            {"type": "conv2d", "filters": 8},
            {"type": "max_pooling2d"},
            {"type": "flatten"},
            {"type": "dense", "units": 16},
        ]
    }

    plan = plans.resolve(_request("classification", "y", network=network), _mnist())

    assert plan.sample_shape == [28, 28]


def test_resolve_npz_rejects_conv2d_after_flatten() -> None:
    network = {"layers": [{"type": "flatten"}, {"type": "conv2d", "filters": 8}]}

    with pytest.raises(InvalidInput, match="needs image rows") as caught:
        plans.resolve(_request("classification", "y", network=network), _mnist())

    assert caught.value.field == "/network/layers/1/type"


def test_resolve_npz_rejects_conv2d_on_flat_rows() -> None:
    dataset = _dataset(
        [_column("x", "float32", shape=[50, 4]), _column("y", "float32", shape=[50])],
        file_format="npz",
    )
    network = {"layers": [{"type": "max_pooling2d"}]}

    with pytest.raises(InvalidInput, match=r"rows have shape \[4\]") as caught:
        plans.resolve(_request("regression", "y", network=network), dataset)

    assert caught.value.field == "/network/layers/0/type"


def test_resolve_leaves_labels_to_training_when_upload_listed_only_some() -> None:
    counts = {f"class {n:03}": 2 for n in range(tabular.MAX_VALUES)}  # the 100 most frequent
    dataset = _dataset([_column("x"), _labels("kind", counts) | {"distinct": 150}])

    plan = plans.resolve(_request("classification", "kind"), dataset)

    assert plan.output_units == 150
    assert plan.labels is None
