"""Inside a trained model: forward propagation layer by layer, and each layer's weights."""

from typing import Annotated

from fastapi import Body
from fastapi.concurrency import run_in_threadpool

from service import models
from service.api.deps import CurrentPrincipal, SessionDep, v1_router
from service.schemas import examples
from service.schemas.inspection import ForwardRequest, ForwardResponse, WeightsResponse

router = v1_router("/v1/models", "models")

FORWARD_EXAMPLES = {
    "concrete": {
        "summary": "One raw row of the concrete data",
        "value": {"instance": examples.CONCRETE_PREDICT["instances"][0]},
    }
}


@router.post("/{model_id:path}/forward", response_model=ForwardResponse)
async def forward_model(
    session: SessionDep,
    principal: CurrentPrincipal,
    model_id: str,
    request: Annotated[ForwardRequest, Body(openapi_examples=FORWARD_EXAMPLES)],
) -> ForwardResponse:
    """One row through the model: every layer's output in order, preprocessing layers included."""
    return await run_in_threadpool(models.forward, session, principal, model_id, request.instance)


@router.get("/{model_id:path}/weights", response_model=WeightsResponse)
def get_model_weights(
    session: SessionDep, principal: CurrentPrincipal, model_id: str
) -> WeightsResponse:
    """Each layer's weights and biases: shapes and statistics, values for small arrays."""
    return models.weights(session, principal, model_id)
