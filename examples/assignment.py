"""The course's final assignment, parts A-D, as repeated jobs: for each part, 50 fresh models,
each trained on a new random 70/30 train/test split, and the mean and standard deviation
(population, as numpy.std) of their test MSE.

    A  raw inputs,          Dense(10, relu) -> Dense(1), adam, MSE,  50 epochs
    B  normalized inputs,   same network,                            50 epochs
    C  normalized inputs,   same network,                           100 epochs
    D  normalized inputs,   three hidden Dense(10, relu) layers,     50 epochs

    python examples/assignment.py [--parts ABCD] [--repeats 50] [--url URL] [--key KEY] [--quick]
"""

from common import DATA, arguments, connect

PARTS = {
    "A": {"normalize": False, "epochs": 50, "hidden": 1},
    "B": {"normalize": True, "epochs": 50, "hidden": 1},
    "C": {"normalize": True, "epochs": 100, "hidden": 1},
    "D": {"normalize": True, "epochs": 50, "hidden": 3},
}
STUDENTS = {"B": "370-390 +- 105-135", "C": "160-163 +- 15-17", "D": "126-127 +- 17"}


def request(dataset_id: str, part: str, repeats: int, quick: bool) -> dict[str, object]:
    spec = PARTS[part]
    return {
        "dataset_id": dataset_id,
        "task": "regression",
        "target": "Strength",
        "preprocessing": {"normalize": spec["normalize"]},
        "network": {
            "layers": [{"type": "dense", "units": 10, "activation": "relu"}] * int(spec["hidden"])
        },
        "training": {
            "optimizer": {"name": "adam"},
            "loss": "mean_squared_error",
            "epochs": 2 if quick else spec["epochs"],
            "batch_size": 32,
            "validation_split": 0.0,
            "test_split": 0.3,
            "seed": 2024,
        },
        "repeats": repeats,
    }


def main() -> None:
    parser = arguments(__doc__ or "")
    parser.add_argument("--parts", default="ABCD")
    parser.add_argument("--repeats", type=int, default=50)
    args = parser.parse_args()
    repeats = 2 if args.quick else args.repeats
    client = connect(args)
    dataset = client.upload(DATA / "concrete_data.csv", "concrete")
    # All parts are submitted at once: their repeats share the workers.
    jobs = {
        p: client.submit(request(dataset.id, p, repeats, args.quick)) for p in args.parts.upper()
    }
    results = {}
    for part, job in jobs.items():
        print(f"part {part}: job {job.id}")
        job = client.wait(job.id, poll=2.0)
        if job.status != "succeeded" or job.repeats is None:
            raise SystemExit(f"part {part}: job {job.id} {job.status}: {job.error}")
        results[part] = job
    print(f"\nmean test MSE over {repeats} repeats (population std):")
    for part, job in results.items():
        assert job.repeats is not None
        mse = job.repeats.test_metrics["loss"]
        seconds = job.duration_seconds or 0.0
        students = STUDENTS.get(part, "-")
        print(
            f"  {part}: {mse.mean:8.2f} +- {mse.std:7.2f}   "
            f"(min {mse.min:.1f}, max {mse.max:.1f}; {seconds:.0f} s; "
            f"students: {students})"
        )


if __name__ == "__main__":
    main()
