"""The course's MNIST classifier: Flatten -> Dense(784, relu) -> Dense(100, relu) -> softmax,
categorical cross-entropy, evaluated on the file's test images (tests/data/mnist_small.npz: a
3,000 + 1,000 image sample of MNIST).

    python examples/mnist.py [--url URL] [--key KEY] [--quick]
"""

from common import DATA, arguments, connect


def main() -> None:
    args = arguments(__doc__ or "").parse_args()
    client = connect(args)
    dataset = client.upload(DATA / "mnist_small.npz", "mnist")
    job = client.submit(
        {
            "dataset_id": dataset.id,
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
    job = client.wait(job.id)
    if job.status != "succeeded" or job.model_id is None:
        raise SystemExit(f"job {job.id} {job.status}: {job.error}")
    metrics = client.model(job.model_id).test_metrics or {}
    print(f"test accuracy {metrics['accuracy']:.4f}, test loss {metrics['loss']:.4f}")
    blank = [[0] * 28 for _ in range(28)]
    (predicted,) = client.predict(job.model_id, [blank])
    print(f"a blank image is read as: {predicted}")


if __name__ == "__main__":
    main()
