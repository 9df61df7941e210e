"""The vanishing-gradient problem: the same regression with six sigmoid hidden layers and with six
ReLU layers (Dense(10) each, on the concrete data). A sigmoid's derivative is at most 0.25, so
each sigmoid layer shrinks the gradient that flows back through it: the first layer's gradient
is orders of magnitude smaller than the output layer's, and the network barely learns. ReLU's
derivative is 1 where a unit is active, so its gradient does not shrink layer by layer, and it
learns.

Both train with Adam at Keras' default learning rate, 0.001, as the course does. Under plain SGD
at 0.01 the ReLU net dies instead: the targets are in MPa (mean about 36), so the first updates'
gradients are large, and one such step pushes every ReLU unit's input below 0 for every row.
Its gradient is then exactly 0 (no gradient, rather than a small one): the server flags it
`dead`, not `vanishing`. Adam scales each step to about the learning rate, so no single update
can kill a unit. (He initialization would also suit ReLU; the network spec uses Keras' default,
Glorot uniform.)

Prints each net's validation loss, its per-layer gradient norms after the first and the last
epoch (GET /v1/jobs/{id}/diagnostics), the first-to-output gradient ratio (first hidden layer's
kernel gradient norm / the output layer's) and the flags the server raised.

    python examples/vanishing_gradient.py [--url URL] [--key KEY] [--quick]
"""

from itertools import pairwise
from typing import Any

from common import DATA, arguments, connect
from dendrite_client import DendriteError

ACTIVATIONS = ("sigmoid", "relu")


def network(activation: str) -> dict[str, object]:
    return {"layers": [{"type": "dense", "units": 10, "activation": activation}] * 6}


def norms(epoch: dict[str, Any]) -> list[float]:
    """The kernel gradient norms, first hidden layer to output layer."""
    return [
        layer["gradient_norm"] for layer in epoch["layers"] if layer["gradient_norm"] is not None
    ]


def describe(epoch: dict[str, Any]) -> str:
    values = norms(epoch)
    ratio = epoch["first_to_output_ratio"]
    shrinks = all(a < b for a, b in pairwise(values))
    return (
        f"  epoch {epoch['epoch']} gradient norms, first layer to output: "
        f"{', '.join(f'{value:.2e}' for value in values)}\n"
        f"    first-to-output gradient ratio {'n/a' if ratio is None else f'{ratio:.2e}'}; "
        f"{'shrinks layer by layer' if shrinks else 'does not shrink layer by layer'}"
    )


def main() -> None:
    args = arguments(__doc__ or "").parse_args()
    client = connect(args)
    dataset = client.upload(DATA / "concrete_data.csv", "concrete")
    epochs = 2 if args.quick else 30
    jobs = {}
    for activation in ACTIVATIONS:
        jobs[activation] = client.submit(
            {
                "dataset_id": dataset.id,
                "task": "regression",
                "target": "Strength",
                "network": network(activation),
                "training": {
                    "optimizer": {"name": "adam", "learning_rate": 0.001},
                    "epochs": epochs,
                    "validation_split": 0.3,
                    "seed": 42,
                },
            },
        )
    summary = {}
    for activation, job in jobs.items():
        print(f"{activation}: job {job.id}")
        job = client.wait(job.id)
        if job.status != "succeeded":
            raise SystemExit(f"job {job.id} {job.status}: {job.error}")
        history = client.history(job.id).epochs
        curve = [round(row.metrics["val_loss"], 1) for row in history]
        print(f"  val_loss by epoch: {curve[:5]} ... {curve[-3:]}")
        summary[activation] = f"final val_loss {curve[-1]}"
        try:
            diagnostics = client.get(f"/v1/jobs/{job.id}/diagnostics")
        except DendriteError as error:
            print(f"  (no gradient diagnostics on this server: {error})")
            continue
        if not diagnostics.get("epochs"):
            continue
        first, last = diagnostics["epochs"][0], diagnostics["epochs"][-1]
        print(describe(first))
        if last is not first:
            print(describe(last))
        for flag in first.get("flags", []):
            print(f"  epoch 1 flag: {flag['kind']} ({flag['rule']}): {flag['detail']}")
        ratio = first["first_to_output_ratio"]
        summary[activation] += (
            f", first-to-output gradient ratio after epoch 1 "
            f"{'n/a' if ratio is None else f'{ratio:.2e}'}"
        )
    print("summary:")
    for activation in ACTIVATIONS:
        print(f"  {activation}: {summary[activation]}")


if __name__ == "__main__":
    main()
