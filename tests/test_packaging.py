"""The installed package holds every file the service reads at run time (the Docker image and any
`pip install .` get the wheel, not the checkout): the console's templates and static files, the
migrations' template."""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_holds_every_data_file(tmp_path: Path) -> None:
    # Built from a copy: an in-tree build would leave build/ in the checkout, and reuse it.
    source = tmp_path / "source"
    for name in ("service", "workers", "migrations"):
        shutil.copytree(ROOT / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", str(source), "-w", str(tmp_path)],
        check=True,
        cwd=tmp_path,
    )  # fmt: skip
    [wheel] = tmp_path.glob("dendrite-*.whl")
    packed = set(zipfile.ZipFile(wheel).namelist())
    needed = [
        path.relative_to(ROOT).as_posix()
        for folder in ("service", "workers", "migrations")
        for path in (ROOT / folder).rglob("*")
        if path.is_file() and path.suffix not in (".py", ".pyc") and "__pycache__" not in path.parts
    ]
    assert needed, "no data files found: the test looks in the wrong place"
    missing = [name for name in needed if name not in packed]
    assert missing == [], (
        f"not in the wheel (add them to [tool.setuptools.package-data]): {missing}"
    )
