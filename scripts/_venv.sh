# Sourced by the scripts: make .venv with Python 3.11 (or python3) and install dendrite into it.
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
    echo "installing dendrite into .venv (the first time takes a few minutes)"
    "$PYTHON" -m venv .venv
fi
# -qq: pip's errors only. Its warnings here (an index location that does not exist, setuptools'
# note on editable installs) and its version check ask nothing of someone starting dendrite.
pip_install=(.venv/bin/python -m pip install -qq --disable-pip-version-check)
"${pip_install[@]}" --upgrade pip "setuptools>=78.1.1"
"${pip_install[@]}" -e ".${1:-}"
# The client library (clients/python), which tests and examples use beside the service.
"${pip_install[@]}" -e clients/python
