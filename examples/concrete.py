"""The course's concrete regression: Dense(50, relu) x 2 -> Dense(1), adam, MSE, 100 epochs,
30 % validation; then predictions from raw rows.

    python examples/concrete.py [--url URL] [--key KEY] [--quick]
"""

from common import DATA, arguments, connect


def main() -> None:
    args = arguments(__doc__ or "").parse_args()
    client = connect(args)
    dataset = client.upload(DATA / "concrete_data.csv", "concrete")
    print(f"dataset {dataset.id}: {dataset.rows} rows")
    job = client.submit(
        {
            "dataset_id": dataset.id,
            "task": "regression",
            "target": "Strength",
            "network": {
                "layers": [
                    {"type": "dense", "units": 50, "activation": "relu"},
                    {"type": "dense", "units": 50, "activation": "relu"},
                ]
            },
            "training": {
                "optimizer": {"name": "adam"},
                "loss": "mean_squared_error",
                "epochs": 2 if args.quick else 100,
                "validation_split": 0.3,
                "seed": 42,
            },
        },
    )
    print(f"job {job.id}: {job.status}")
    job = client.wait(job.id)
    if job.status != "succeeded" or job.model_id is None:
        raise SystemExit(f"job {job.id} {job.status}: {job.error}")
    history = client.history(job.id).epochs
    first, last = history[0].metrics, history[-1].metrics
    print(f"epoch 1: loss {first['loss']:.1f}, val_loss {first['val_loss']:.1f}")
    print(f"epoch {len(history)}: loss {last['loss']:.1f}, val_loss {last['val_loss']:.1f}")
    row = {
        "Cement": 540.0,
        "Blast Furnace Slag": 0.0,
        "Fly Ash": 0.0,
        "Water": 162.0,
        "Superplasticizer": 2.5,
        "Coarse Aggregate": 1040.0,
        "Fine Aggregate": 676.0,
        "Age": 28,
    }
    (predicted,) = client.predict(job.model_id, [row])
    print(
        f"predicted strength of the file's first row (79.99 measured): {predicted['Strength']:.2f}"
    )


if __name__ == "__main__":
    main()
