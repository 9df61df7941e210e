"""The course's MNIST classifier: Flatten -> Dense(784, relu) -> Dense(100, relu) -> softmax,
categorical cross-entropy, evaluated on the file's test images (tests/data/mnist_small.npz: a
3,000 + 1,000 image sample of MNIST).

    python examples/mnist.py [--url URL] [--key KEY] [--quick]
"""

from dendrite_client import Client, arguments


def main() -> None:
    args = arguments(__doc__ or "").parse_args()
    client = Client(args.url, args.key)
    dataset = client.upload("mnist_small.npz", "mnist")
    job = client.post(
        "/v1/jobs",
        {
            "dataset_id": dataset["id"],
            "task": "classification",
            "target": "y",
            "network": {
                "layers": [
                    {"type": "flatten"},
                    {"type": "dense", "units": 784, "activation": "relu"},
                    {"type": "dense", "units": 100, "activation": "relu"},
                ]
            },
            "training": {
                "optimizer": {"name": "adam"},
                "loss": "categorical_crossentropy",
                "metrics": ["accuracy"],
                "epochs": 1 if args.quick else 10,
                "validation_split": 0.0,
                "seed": 42,
            },
        },
    )
    job = client.wait(f"/v1/jobs/{job['id']}")
    if job["status"] != "succeeded":
        raise SystemExit(f"job {job['id']} {job['status']}: {job['error']}")
    model = client.get(f"/v1/models/{job['model_id']}")
    metrics = model["test_metrics"]
    print(f"test accuracy {metrics['accuracy']:.4f}, test loss {metrics['loss']:.4f}")
    blank = [[0] * 28 for _ in range(28)]
    predicted = client.post(f"/v1/models/{job['model_id']}/predict", {"instances": [blank]})
    print(f"a blank image is read as: {predicted['predictions'][0]}")


if __name__ == "__main__":
    main()
