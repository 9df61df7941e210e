"""The documentation keeps up with the code: every setting is documented in docs/, and the README
points a newcomer at every docs page and at the commands it promises. (Links between the docs pages
are checked by `mkdocs build --strict`, which scripts/test runs.)"""

import re
from pathlib import Path

from service.core.config import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def test_every_setting_is_documented_in_the_settings_or_security_page() -> None:
    documented = (DOCS / "settings.md").read_text() + (DOCS / "security.md").read_text()
    variables = [f"DENDRITE_{name.upper()}" for name in Settings.model_fields]

    missing = [variable for variable in variables if f"`{variable}`" not in documented]

    assert variables
    assert missing == []


def test_readme_links_every_docs_page() -> None:
    readme = (ROOT / "README.md").read_text()
    linked = set(re.findall(r"\]\(docs/([\w-]+\.md)(?:#[\w-]+)?\)", readme))
    pages = {page.name for page in DOCS.glob("*.md")} - {"index.md"}

    assert pages
    assert pages - linked == set()
    assert linked - pages == set()


def test_readme_names_the_test_and_docs_commands() -> None:
    readme = (ROOT / "README.md").read_text()

    for command in (
        "./scripts/serve",
        "./scripts/test",
        "DENDRITE_TEST_DOCKER=1 ./scripts/test -m docker",
        ".venv/bin/mkdocs serve",
    ):
        assert command in readme, command
