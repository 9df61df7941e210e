"""The vanishing-gradient problem: the same regression with six sigmoid hidden layers and with six
ReLU layers. With sigmoid, the gradient that reaches the first layer is orders of magnitude
smaller than the output layer's, and the network barely learns; with ReLU it does not shrink.

Uses GET /v1/jobs/{id}/diagnostics (per-layer gradient norms) where the server has it, and the
learning curves in any case.

    python examples/vanishing_gradient.py [--url URL] [--key KEY] [--quick]
"""

from common import DATA, arguments, connect
from dendrite_client import DendriteError


def network(activation: str) -> dict[str, object]:
    return {"layers": [{"type": "dense", "units": 10, "activation": activation}] * 6}


def main() -> None:
    args = arguments(__doc__ or "").parse_args()
    client = connect(args)
    dataset = client.upload(DATA / "concrete_data.csv", "concrete")
    epochs = 2 if args.quick else 30
    jobs = {}
    for activation in ("sigmoid", "relu"):
        jobs[activation] = client.submit(
            {
                "dataset_id": dataset.id,
                "task": "regression",
                "target": "Strength",
                "network": network(activation),
                "training": {
                    "optimizer": {"name": "sgd", "learning_rate": 0.01},
                    "epochs": epochs,
                    "validation_split": 0.3,
                    "seed": 42,
                },
            },
        )
    for activation, job in jobs.items():
        print(f"{activation}: job {job.id}")
        job = client.wait(job.id)
        if job.status != "succeeded":
            raise SystemExit(f"job {job.id} {job.status}: {job.error}")
        history = client.history(job.id).epochs
        curve = [round(row.metrics["val_loss"], 1) for row in history]
        print(f"  val_loss by epoch: {curve[:5]} ... {curve[-3:]}")
        try:
            diagnostics = client.get(f"/v1/jobs/{job.id}/diagnostics")
        except DendriteError as error:
            print(f"  (no gradient diagnostics on this server: {error})")
            continue
        if diagnostics.get("epochs"):
            first = diagnostics["epochs"][0]
            norms = [
                f"{layer['gradient_norm']:.2e}"
                for layer in first["layers"]
                if layer.get("gradient_norm") is not None
            ]
            print(f"  epoch 1 gradient norms, first layer to output: {', '.join(norms)}")
            print(f"  first/output layer gradient ratio: {first['first_to_output_ratio']}")
            for flag in first.get("flags", []):
                print(f"  flag: {flag['kind']} ({flag['rule']}): {flag['detail']}")


if __name__ == "__main__":
    main()
