"""Gradient diagnostics: what the worker measures each epoch (workers/diagnostics.py), the rules
that flag dead layers and vanishing and exploding gradients, and reading them back per job."""

import math
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from service import jobs
from service.core.orm import EpochDiagnostic
from service.keys import Principal
from service.schemas.diagnostics import (
    DiagnosticFlag,
    DiagnosticsRead,
    EpochDiagnosticRead,
    LayerDiagnostic,
)

PROBE_ROWS = 256  # training rows in the probe batch, drawn once per job with its seed
DEAD_ACTIVATIONS = ("relu", "relu6")
ASYMPTOTES = {
    "sigmoid": (0.0, 1.0),
    "hard_sigmoid": (0.0, 1.0),
    "tanh": (-1.0, 1.0),
    "hard_tanh": (-1.0, 1.0),
}
SATURATION_EPS = 0.01
SATURATED_SHARE = 0.9
VANISHING_RATIO = 1e-3
EXPLODING_RATIO = 1e3
EXPLODING_NORM = 1e6  # far above what a loss of sensible scale gives

RULES = {
    "gradient_norm": (
        f"L2 norm of the gradient of the training loss with respect to the layer's kernel, on a "
        f"fixed probe batch of up to {PROBE_ROWS} training rows (drawn once with the job's seed), "
        "after each epoch, with dropout off"
    ),
    "dead_fraction": (
        f"{' and '.join(DEAD_ACTIVATIONS)} layers: the share of units (channels, for "
        "convolutions) whose output is 0 for every probe sample"
    ),
    "saturated_fraction": (
        f"{', '.join(ASYMPTOTES)} layers: the share of units whose output lies within "
        f"{SATURATION_EPS} of an asymptote of the activation for at least {SATURATED_SHARE:.0%} "
        "of the probe samples (there the activation's derivative is under 1 % of its peak)"
    ),
    "dead": (
        f"a {' or '.join(DEAD_ACTIVATIONS)} layer whose units are all dead (dead_fraction 1), or "
        "a layer whose kernel gradient norm is exactly 0: no gradient reaches it, so it cannot "
        "learn (a gradient of exactly 0 is dead, not vanishing)"
    ),
    "vanishing": (
        f"first layer's kernel gradient norm / output layer's < {VANISHING_RATIO:.0e}, the "
        "first layer's norm above 0 and no layer dead"
    ),
    "exploding": (
        f"a kernel gradient norm > {EXPLODING_NORM:.0e} or not finite, or first layer's kernel "
        f"gradient norm / output layer's > {EXPLODING_RATIO:.0e}"
    ),
}


def assess(layers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The flags one epoch's measurements raise, each with the rule that raised it."""
    flags: list[dict[str, Any]] = []
    kernels = [layer for layer in layers if layer["gradient_norm"] is not None]
    broken = [layer["name"] for layer in layers if not layer["gradient_finite"]]
    if broken:
        flags.append(
            _flag("exploding", f"the kernel gradient of {', '.join(broken)} is not finite", broken)
        )
    large = [layer for layer in kernels if layer["gradient_norm"] > EXPLODING_NORM]
    for layer in large:
        detail = f"{layer['name']}: kernel gradient norm {layer['gradient_norm']:.2e}"
        flags.append(_flag("exploding", f"{detail} > {EXPLODING_NORM:.0e}", [layer["name"]]))
    dead = _dead(layers)
    if dead:
        detail = "; ".join(dead.values())
        hidden = [layer["name"] for layer in kernels[:-1]]
        if hidden and set(hidden) <= set(dead):
            detail = f"every hidden layer is dead, so the network cannot learn: {detail}"
        flags.append(_flag("dead", detail, list(dead)))
    if len(kernels) >= 2 and not dead:
        first, last = kernels[0], kernels[-1]
        if first["gradient_norm"] > 0 and last["gradient_norm"] > 0:
            ratio = first["gradient_norm"] / last["gradient_norm"]
            detail = (
                f"kernel gradient norm of {first['name']} ({first['gradient_norm']:.2e}) / "
                f"{last['name']} ({last['gradient_norm']:.2e}) = {ratio:.2e}"
            )
            names = [first["name"], last["name"]]
            if ratio < VANISHING_RATIO:
                flags.append(_flag("vanishing", f"{detail} < {VANISHING_RATIO:.0e}", names))
            elif ratio > EXPLODING_RATIO:
                flags.append(_flag("exploding", f"{detail} > {EXPLODING_RATIO:.0e}", names))
    return flags


def _dead(layers: list[dict[str, Any]]) -> dict[str, str]:
    """Each dead layer's name, with why it is dead."""
    dead = {}
    for layer in layers:
        reasons = []
        if layer["dead_fraction"] is not None and layer["dead_fraction"] >= 1.0:
            reasons.append(f"every unit of its {layer['activation']} outputs 0 on every sample")
        if layer["gradient_norm"] == 0:
            reasons.append("kernel gradient norm exactly 0")
        if reasons:
            dead[layer["name"]] = f"{layer['name']}: {' and '.join(reasons)}"
    return dead


def _flag(kind: str, detail: str, layers: list[str]) -> dict[str, Any]:
    return {"kind": kind, "rule": RULES[kind], "detail": detail, "layers": layers}


def ratio(layers: list[dict[str, Any]]) -> float | None:
    """First layer's kernel gradient norm / the output layer's, when both are known."""
    norms = [layer["gradient_norm"] for layer in layers if layer["gradient_norm"] is not None]
    if len(norms) < 2 or norms[-1] == 0:
        return None
    value = float(norms[0] / norms[-1])
    return value if math.isfinite(value) else None


def record(
    session: Session, job_id: str, epoch: int, layers: list[dict[str, Any]], first: bool
) -> None:
    """Write one epoch's measurements and flags (the caller holds the job: EpochRecorder). With
    `first` (the attempt's first epoch), rows from this epoch on go first: written before the job
    resumed from an earlier checkpoint, they are trained again."""
    if first:
        session.execute(
            delete(EpochDiagnostic).where(
                EpochDiagnostic.job_id == job_id, EpochDiagnostic.epoch >= epoch
            )
        )
    session.add(EpochDiagnostic(job_id=job_id, epoch=epoch, layers=layers, flags=assess(layers)))


def rows(session: Session, job_id: str) -> list[EpochDiagnostic]:
    query = select(EpochDiagnostic).where(EpochDiagnostic.job_id == job_id)
    return list(session.scalars(query.order_by(EpochDiagnostic.epoch)).all())


def enabled(request: dict[str, Any]) -> bool:
    return bool(request.get("training", {}).get("diagnostics", True))


def read(session: Session, principal: Principal, job_id: str) -> DiagnosticsRead:
    job = jobs.get(session, principal, job_id)
    epochs = [
        EpochDiagnosticRead(
            epoch=row.epoch,
            first_to_output_ratio=ratio(row.layers),
            layers=[LayerDiagnostic.model_validate(layer) for layer in row.layers],
            flags=[DiagnosticFlag.model_validate(flag) for flag in row.flags],
        )
        for row in rows(session, job_id)
    ]
    return DiagnosticsRead(job_id=job.id, enabled=enabled(job.request), rules=RULES, epochs=epochs)
