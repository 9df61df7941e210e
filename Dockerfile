# One image, several commands: `dendrite api`, `dendrite worker`, `dendrite migrate` (and `serve`,
# `keys`). CPU TensorFlow by default; the GPU build adds TensorFlow's CUDA libraries:
#   docker build -t dendrite .                                 # CPU
#   docker build -t dendrite:gpu --build-arg EXTRAS=gpu .      # GPU (NVIDIA container toolkit)
# It builds with the classic builder and with BuildKit alike (no BuildKit-only syntax). The base
# is any Debian-like image with Python 3.11 and its venv module, `python:3.11-slim` by default:
#   docker build -t dendrite --build-arg BASE_IMAGE=registry.example/python:3.11-slim .
ARG BASE_IMAGE=python:3.11-slim

# Build: a virtual environment with dendrite and its dependencies, nothing else.
FROM ${BASE_IMAGE} AS build
ARG EXTRAS=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
RUN python3 -m venv /opt/dendrite
# The dependencies first, from pyproject.toml alone: a change to dendrite's code rebuilds only
# the last layer, not TensorFlow's. (pip compiles the .pyc files: TensorFlow imports in each
# job's process start faster.)
COPY pyproject.toml ./
RUN /opt/dendrite/bin/python -c 'import sys, tomllib; project = tomllib.load(open("pyproject.toml", "rb"))["project"]; extras = [e for e in sys.argv[1].split(",") if e]; print("\n".join(project["dependencies"] + [d for e in extras for d in project["optional-dependencies"][e]]))' "$EXTRAS" > /tmp/requirements.txt \
    && /opt/dendrite/bin/pip install -r /tmp/requirements.txt "setuptools>=69,<81"
COPY README.md ./
COPY service ./service
COPY workers ./workers
COPY migrations ./migrations
# No network needed from here: the build backend (setuptools) is already in the environment.
RUN /opt/dendrite/bin/pip install --no-deps --no-build-isolation ".${EXTRAS:+[$EXTRAS]}"

# Runtime: the same slim Python, the virtual environment, and an unprivileged user.
FROM ${BASE_IMAGE} AS runtime
ENV PATH=/opt/dendrite/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    DENDRITE_DATA_DIR=/data \
    DENDRITE_LOG_FORMAT=json
# /artifacts is where compose mounts the local artifact volume: a new named volume copies this
# directory's owner and mode, so the unprivileged user, and only it, can use it.
RUN groupadd --gid 10001 dendrite \
    && useradd --create-home --uid 10001 --gid 10001 dendrite \
    && install -d -m 0700 -o 10001 -g 10001 /data /artifacts
COPY --from=build /opt/dendrite /opt/dendrite
USER 10001:10001
WORKDIR /home/dendrite
EXPOSE 8000
# `dendrite api` and `dendrite worker` stop gracefully on SIGTERM (see docs/operations.md,
# "Stopping"); `dendrite worker` execs Celery, so the signal reaches it directly.
ENTRYPOINT ["dendrite"]
CMD ["api", "--host", "0.0.0.0", "--port", "8000"]
