"""CI's dependency audit (scripts/audit.py): which pip-audit reports fail it.

The reports are pip-audit's JSON format and PyPI's project page as they come; no network.
"""

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).parents[2] / "scripts" / "audit.py"


@pytest.fixture(scope="module")
def audit() -> ModuleType:
    spec = importlib.util.spec_from_file_location("dendrite_audit", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


KERAS_CVE = {
    "id": "GHSA-48g7-3x6r-xfhp",
    "fix_versions": ["3.9.0"],
    "aliases": ["CVE-2025-1550"],
}


def pip_audit(*dependencies: dict[str, Any]) -> dict[str, Any]:
    return {"dependencies": list(dependencies), "fixes": []}


def not_found(name: str, version: str) -> dict[str, Any]:
    reason = f"Dependency not found on PyPI and could not be audited: {name} ({version})"
    return {"name": name, "skip_reason": reason}


def no_pages(_name: str) -> None:
    return None


def test_a_known_vulnerability_fails_the_audit(
    audit: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    report = audit.evaluate(
        pip_audit(
            {"name": "keras", "version": "3.8.0", "vulns": [KERAS_CVE]},
            {"name": "numpy", "version": "2.4.6", "vulns": []},
        ),
        {},
        no_pages,
    )
    assert audit.verdict(report, require_complete=False) == 1
    out = capsys.readouterr().out
    assert "VULNERABLE keras==3.8.0  GHSA-48g7-3x6r-xfhp (CVE-2025-1550)  fixed in: 3.9.0" in out
    assert "2 packages audited, 1 vulnerable" in out


def test_an_ignored_vulnerability_is_shown_with_its_reason(
    audit: ModuleType, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(audit.IGNORED, "CVE-2025-1550", "not reachable: no Lambda layers load")
    report = audit.evaluate(
        pip_audit({"name": "keras", "version": "3.8.0", "vulns": [KERAS_CVE]}), {}, no_pages
    )
    assert audit.verdict(report, require_complete=False) == 0
    out = capsys.readouterr().out
    assert "IGNORED keras==3.8.0" in out and "-- not reachable: no Lambda layers load" in out
    assert "0 vulnerable, 1 ignored" in out


def test_a_package_without_a_version_page_is_checked_on_its_project_page(
    audit: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    """A mirror that serves only `/pypi/NAME/json`: its `vulnerabilities` are the newest
    release's, so they count where that release is installed (withdrawn ones do not)."""
    pages = {
        "ecdsa": {
            "info": {"version": "0.19.2"},
            "vulnerabilities": [
                {"id": "PYSEC-1", "aliases": ["CVE-2024-23342"], "fixed_in": []},
                {"id": "PYSEC-2", "aliases": [], "fixed_in": [], "withdrawn": "2025-01-01"},
            ],
        },
        "h5py": {"info": {"version": "3.16.0"}, "vulnerabilities": []},
    }
    report = audit.evaluate(
        pip_audit(not_found("ecdsa", "0.19.2"), not_found("h5py", "3.14.0")),
        {"ecdsa": "0.19.2", "h5py": "3.14.0"},
        pages.get,
    )
    assert [(f.package, f.id) for f in report.findings] == [("ecdsa", "PYSEC-1")]
    assert list(report.unaudited) == ["h5py==3.14.0"]
    assert audit.verdict(report, require_complete=False) == 1
    out = capsys.readouterr().out
    assert "VULNERABLE ecdsa==0.19.2  PYSEC-1 (CVE-2024-23342)  fixed in: no fixed release" in out
    assert "h5py==3.14.0: its version page is missing and 3.16.0 is the newest release" in out


def test_packages_left_unaudited_fail_only_when_the_audit_must_be_complete(
    audit: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    report = audit.evaluate(pip_audit(not_found("numpy", "2.4.6")), {"numpy": "2.4.6"}, no_pages)
    assert audit.verdict(report, require_complete=False) == 0
    assert audit.verdict(report, require_complete=True) == 1
    assert "1 not audited" in capsys.readouterr().out


def test_dendrite_itself_is_not_audited_against_another_project_of_its_name(
    audit: ModuleType,
) -> None:
    pages = {"dendrite": {"info": {"version": "0.1.0"}, "vulnerabilities": [KERAS_CVE]}}
    report = audit.evaluate(pip_audit(not_found("dendrite", "0.1.0")), {}, pages.get)
    assert report.findings == [] and report.unaudited == {} and report.audited == 0


def test_every_ignored_vulnerability_says_why(audit: ModuleType) -> None:
    assert all(reason.strip() for reason in audit.IGNORED.values())
