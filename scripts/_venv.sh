# Sourced by the scripts: make .venv with Python 3.11 (or python3) and install dendrite into it.
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip "setuptools>=78.1.1"
.venv/bin/python -m pip install --quiet -e ".${1:-}"
# The client library (clients/python), which tests and examples use beside the service.
.venv/bin/python -m pip install --quiet -e clients/python
