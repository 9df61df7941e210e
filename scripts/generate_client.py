"""Regenerate the client's models from the API: `python scripts/generate_client.py [--check]`.

Writes `clients/python/openapi.json` (dendrite's OpenAPI document, as the app serves it) and
`clients/python/dendrite_client/models.py` (pydantic models made from it by
datamodel-code-generator). With `--check`, writes nothing and exits 1 when either is out of date
(tests/test_client.py runs it in CI).
"""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLIENT = ROOT / "clients" / "python"
SPEC = CLIENT / "openapi.json"
MODELS = CLIENT / "dendrite_client" / "models.py"
HEADER = '"""Generated from openapi.json by scripts/generate_client.py: do not edit."""\n\n'


def spec() -> str:
    """The app's OpenAPI document, made in a process without DENDRITE_* settings (the defaults),
    so that it does not depend on how this machine is configured."""
    code = (
        "import json; from service.main import create_app; "
        "print(json.dumps(create_app().openapi(), indent=2, sort_keys=True))"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("DENDRITE_")}
    with tempfile.TemporaryDirectory() as folder:
        env["DENDRITE_DATA_DIR"] = folder  # nothing is written to the checkout
        done = subprocess.run(
            [sys.executable, "-c", code],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
    return done.stdout


def models(document: str) -> str:
    with tempfile.TemporaryDirectory() as folder:
        source, target = Path(folder) / "openapi.json", Path(folder) / "models.py"
        source.write_text(document)
        subprocess.run(
            [
                str(Path(sys.executable).parent / "datamodel-codegen"),
                "--input", str(source),
                "--input-file-type", "openapi",
                "--output", str(target),
                "--output-model-type", "pydantic_v2.BaseModel",
                "--target-python-version", "3.11",
                "--disable-timestamp",
                "--use-standard-collections",
                "--use-union-operator",
                "--field-constraints",
                "--set-default-enum-member",
                "--formatters", "ruff-format",
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        body = target.read_text()
    # The tool's own header names a temporary path: replace it with a stable one.
    lines = body.splitlines(keepends=True)
    while lines and lines[0].startswith("#"):
        lines.pop(0)
    return HEADER + "".join(lines).lstrip("\n")


def main(argv: list[str]) -> int:
    document = spec()
    generated = models(document)
    if "--check" in argv:
        stale = [
            str(path.relative_to(ROOT))
            for path, text in ((SPEC, document), (MODELS, generated))
            if not path.exists() or path.read_text() != text
        ]
        if stale:
            print(
                f"out of date: {', '.join(stale)}; run python scripts/generate_client.py",
                file=sys.stderr,
            )
            return 1
        return 0
    SPEC.write_text(document)
    MODELS.write_text(generated)
    print(f"wrote {SPEC.relative_to(ROOT)} and {MODELS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
