"""Spec validation without training: resolve the request, build the Keras model, describe it."""

from sqlalchemy.orm import Session

from service import datasets
from service.core.config import get_settings
from service.core.errors import InvalidInput
from service.keys import Principal
from service.ml import plan as plans
from service.schemas.jobs import JobCreate
from service.schemas.validation import LayerSummary, SpecSummary, TrainingMemory


def validate(session: Session, principal: Principal, request: JobCreate) -> SpecSummary:
    from service.ml import builder  # TensorFlow loads here, on the first validation

    dataset = datasets.get(session, principal, request.dataset_id)
    plan = plans.resolve(request, dataset)
    columns = {column["name"]: column for column in dataset.columns}
    for feature in plan.features:
        if feature.kind == "string":
            feature.categories = sorted(
                str(v) for v, _n in columns[feature.name].get("values") or []
            )
    try:
        model = builder.build(request.network, plan, normalization=None)
    except ValueError as error:
        raise InvalidInput(f"the network cannot be built: {error}", field="/network") from None
    layers = [LayerSummary(**row) for row in builder.summarize(model)]
    trainable = sum(int(w.numpy().size) for w in model.trainable_weights)
    memory = plan.memory
    assert memory is not None  # `plans.resolve` estimated it
    return SpecSummary(
        inputs=[f.name for f in plan.features],
        layers=layers,
        parameters=int(model.count_params()),
        trainable_parameters=trainable,
        loss=plan.loss,
        metrics=plan.metrics,
        epochs=plan.epochs,
        output_units=plan.output_units,
        labels=plan.labels,
        training_memory=TrainingMemory(
            total_mb=_mb(memory.total_bytes),
            weights_mb=_mb(memory.weights_bytes),
            activations_mb=_mb(memory.activations_bytes),
            input_mb=_mb(memory.input_bytes),
            batch_size=memory.batch_size,
            limit_mb=get_settings().max_training_memory_mb,
        ),
    )


def _mb(size: int) -> float:
    return round(size / 2**20, 3)
