"""Webhooks: your signing secret, and each job's deliveries to its callback_url."""

from service import webhooks
from service.api.deps import CurrentPrincipal, SessionDep, v1_router
from service.schemas.webhooks import WebhookDeliveryRead, WebhookSecretRead

router = v1_router("/v1", "webhooks")


@router.get("/webhooks/secret", response_model=WebhookSecretRead)
def get_webhook_secret(session: SessionDep, principal: CurrentPrincipal) -> WebhookSecretRead:
    """Your key for verifying webhook signatures (made on first use; the same until rotated)."""
    row = webhooks.secret(session, principal.owner)
    return WebhookSecretRead(secret=row.secret, created_at=row.created_at)


@router.post("/webhooks/secret/rotate", response_model=WebhookSecretRead)
def rotate_webhook_secret(session: SessionDep, principal: CurrentPrincipal) -> WebhookSecretRead:
    """Replace your webhook secret: every webhook from now on, retries too, is signed with it."""
    row = webhooks.rotate(session, principal.owner)
    return WebhookSecretRead(secret=row.secret, created_at=row.created_at)


@router.get("/jobs/{job_id}/deliveries", response_model=list[WebhookDeliveryRead])
def list_job_deliveries(
    session: SessionDep, principal: CurrentPrincipal, job_id: str
) -> list[WebhookDeliveryRead]:
    """The job's webhook delivery to its callback_url, with every attempt (empty without one)."""
    return webhooks.deliveries(session, principal, job_id)
