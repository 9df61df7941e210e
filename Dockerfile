# One image, several commands: `dendrite api`, `dendrite worker`, `dendrite migrate`.
# Build the GPU variant with: docker build --build-arg EXTRAS=gpu .
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim AS build
ARG EXTRAS=""
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python -m venv /opt/dendrite
COPY pyproject.toml README.md ./
COPY service ./service
COPY workers ./workers
COPY migrations ./migrations
RUN /opt/dendrite/bin/pip install ".${EXTRAS:+[$EXTRAS]}"

FROM python:${PYTHON_VERSION}-slim AS runtime
ENV PATH=/opt/dendrite/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    DENDRITE_DATA_DIR=/data
RUN useradd --create-home --uid 10001 dendrite && mkdir /data && chown dendrite /data
COPY --from=build /opt/dendrite /opt/dendrite
USER dendrite
WORKDIR /home/dendrite
VOLUME ["/data"]
EXPOSE 8000
ENTRYPOINT ["dendrite"]
CMD ["api", "--host", "0.0.0.0", "--port", "8000"]
