"""Audit the installed environment for known vulnerabilities (pip-audit); CI runs it.

    .venv/bin/python scripts/audit.py [--require-complete]

Fails (exit 1) on any known vulnerability of an installed package, unless IGNORED below says
why it does not apply to dendrite. dendrite itself (installed editable) is not audited.

pip-audit asks PyPI's JSON API about each installed version (`/pypi/NAME/VERSION/json`). Where
that page is missing (some mirrors and proxies serve only the project page `/pypi/NAME/json`,
as the build machines here do), the package is checked against the project page instead: its
`vulnerabilities` are those of the newest release, so they tell only where the newest release
is installed. Packages that neither way could audit are listed; with --require-complete (use it
where PyPI answers in full) they fail the audit too.
"""

import argparse
import json
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from packaging.utils import canonicalize_name

PYPI = os.environ.get("AUDIT_PYPI_URL", "https://pypi.org/pypi")
TIMEOUT = 15
SELF = "dendrite"  # this project; PyPI's "dendrite" is another one

# Known vulnerabilities that do not fail the audit: id (or any alias: CVE, GHSA, PYSEC) -> why.
# Each entry needs a reason and is removed once a fixed release can be installed.
IGNORED: dict[str, str] = {}


@dataclass
class Finding:
    package: str
    version: str
    id: str
    aliases: list[str]
    fixed_in: list[str]

    def ignored_because(self) -> str | None:
        for name in (self.id, *self.aliases):
            if name in IGNORED:
                return IGNORED[name]
        return None


@dataclass
class Report:
    findings: list[Finding] = field(default_factory=list)
    unaudited: dict[str, str] = field(default_factory=dict)  # package==version -> why
    audited: int = 0


def run_pip_audit() -> dict[str, Any]:
    """pip-audit's JSON report of this interpreter's environment."""
    command = [
        sys.executable, "-m", "pip_audit", "--skip-editable", "--format", "json",
        "--progress-spinner", "off", "--desc", "off", "--aliases", "on",
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    # 0: nothing found, 1: vulnerabilities found; anything else: pip-audit itself failed.
    if done.returncode not in (0, 1) or not done.stdout.strip():
        sys.stderr.write(done.stderr)
        raise SystemExit(f"pip-audit failed (exit {done.returncode})")
    return dict(json.loads(done.stdout))


def project_page(name: str) -> dict[str, Any] | None:
    cafile = os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE")
    context = ssl.create_default_context(cafile=cafile)
    request = urllib.request.Request(f"{PYPI}/{name}/json", headers={"Accept": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT, context=context) as response:
            return dict(json.load(response))
    except (urllib.error.URLError, TimeoutError, ValueError):
        return None


def installed_versions() -> dict[str, str]:
    return {
        canonicalize_name(dist.metadata["Name"]): dist.version for dist in metadata.distributions()
    }


def evaluate(audit: dict[str, Any], versions: dict[str, str], fetch: Any = project_page) -> Report:
    """Findings from pip-audit's report; packages it skipped are checked on their project page
    where the newest release is the one installed."""
    report = Report()
    dependencies = [
        d for d in audit.get("dependencies", []) if canonicalize_name(d["name"]) != SELF
    ]
    skipped = [canonicalize_name(d["name"]) for d in dependencies if "skip_reason" in d]
    with ThreadPoolExecutor(max_workers=8) as pool:
        pages = dict(zip(skipped, pool.map(fetch, skipped), strict=True))
    for dependency in dependencies:
        name = canonicalize_name(dependency["name"])
        version = dependency.get("version") or versions.get(name, "?")
        if "skip_reason" not in dependency:
            report.audited += 1
            for vuln in dependency.get("vulns", []):
                report.findings.append(
                    Finding(
                        name, version, vuln["id"], vuln.get("aliases", []), vuln["fix_versions"]
                    )
                )
            continue
        page = pages[name]
        if page is None:
            report.unaudited[f"{name}=={version}"] = dependency["skip_reason"]
            continue
        newest = page.get("info", {}).get("version")
        if newest != version:
            report.unaudited[f"{name}=={version}"] = (
                f"its version page is missing and {newest} is the newest release"
            )
            continue
        report.audited += 1
        for vuln in page.get("vulnerabilities", []):
            if not vuln.get("withdrawn"):
                report.findings.append(
                    Finding(name, version, vuln["id"], vuln.get("aliases", []), vuln["fixed_in"])
                )
    return report


def verdict(report: Report, require_complete: bool) -> int:
    failing = [f for f in report.findings if f.ignored_because() is None]
    for finding in report.findings:
        reason = finding.ignored_because()
        fix = ", ".join(finding.fixed_in) or "no fixed release"
        aliases = ", ".join(finding.aliases)
        line = f"{finding.package}=={finding.version}  {finding.id} ({aliases})  fixed in: {fix}"
        print(f"IGNORED {line}  -- {reason}" if reason else f"VULNERABLE {line}")
    if report.unaudited:
        print(f"not audited ({len(report.unaudited)}):")
        for package, why in sorted(report.unaudited.items()):
            print(f"  {package}: {why}")
    print(
        f"audit: {report.audited} packages audited, {len(failing)} vulnerable, "
        f"{len(report.findings) - len(failing)} ignored, {len(report.unaudited)} not audited"
    )
    if failing:
        print("upgrade the packages above (or add an entry with its reason to IGNORED)")
        return 1
    if require_complete and report.unaudited:
        print("--require-complete: every package must be audited")
        return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--require-complete", action="store_true", help="fail where a package was not audited"
    )
    args = parser.parse_args()
    report = evaluate(run_pip_audit(), installed_versions())
    return verdict(report, args.require_complete)


if __name__ == "__main__":
    sys.exit(main())
