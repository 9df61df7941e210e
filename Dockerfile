# syntax=docker/dockerfile:1
# One image, several commands: `dendrite api`, `dendrite worker`, `dendrite migrate` (and `serve`,
# `keys`). CPU TensorFlow by default; the GPU build adds TensorFlow's CUDA libraries:
#   docker build -t dendrite .                                 # CPU
#   docker build -t dendrite:gpu --build-arg EXTRAS=gpu .      # GPU (NVIDIA container toolkit)
ARG PYTHON_VERSION=3.11

# Build: a virtual environment with dendrite and its dependencies, nothing else.
FROM python:${PYTHON_VERSION}-slim AS build
ARG EXTRAS=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/dendrite
COPY pyproject.toml README.md ./
COPY service ./service
COPY workers ./workers
COPY migrations ./migrations
# The pip cache stays in BuildKit's cache, out of the image; rebuilds reuse downloaded wheels.
# (pip compiles the .pyc files: TensorFlow imports in each job's process start faster.)
RUN --mount=type=cache,target=/root/.cache/pip \
    /opt/dendrite/bin/pip install ".${EXTRAS:+[$EXTRAS]}"

# Runtime: the same slim Python, the virtual environment, and an unprivileged user.
FROM python:${PYTHON_VERSION}-slim AS runtime
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
# `dendrite api` and `dendrite worker` stop gracefully on SIGTERM (see the README's "Run the
# stack"); `dendrite worker` execs Celery, so the signal reaches it directly.
ENTRYPOINT ["dendrite"]
CMD ["api", "--host", "0.0.0.0", "--port", "8000"]
