#!/usr/bin/env bash
# Groundwork for the real-stack test (issue 11), run by hand for now: the project's real
# docker-compose.yml on a Docker engine without a registry (Docker 20.10, docker-compose 1.29,
# classic builder, dockerd --bridge=none).
#
#   tests/stack/runbook.sh            # stand-ins (if missing), tag, up, drive.py, down -v
#   REBUILD=1 tests/stack/runbook.sh  # rebuild the stand-ins (--no-cache) even if they exist
#   BUILD=1 tests/stack/runbook.sh    # `up -d --build`, with docker-compose.override.yml here
#                                     # (base image argument; build network: host)
#
# Needs: dendrite-local/python:3.11-slim (a `debootstrap --variant=minbase
# --include=python3,python3-venv,ca-certificates bookworm` rootfs, `docker import`ed) and
# dendrite:local (`docker build --network host --build-arg
# BASE_IMAGE=dendrite-local/python:3.11-slim -t dendrite:local .`). Logs go to tests/stack/logs/.
set -euo pipefail
cd "$(dirname "$0")"
HERE=$(pwd)
REPO=$(cd ../.. && pwd)
mkdir -p logs
export DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0
PROJECT=dendrite-it
COMPOSE=(docker-compose -p "$PROJECT" -f "$REPO/docker-compose.yml")
export DRIVE_COMPOSE_FILES="$REPO/docker-compose.yml"
BASE=dendrite-local/python:3.11-slim

docker image inspect "$BASE" >/dev/null
docker image inspect dendrite:local >/dev/null

# 1. Stand-ins for images this machine cannot pull, tagged with the compose file's names.
build_standin() {  # name tag dir
    local tag=$1 dir=$2 start end
    if [[ -z "${REBUILD:-}" ]] && docker image inspect "$tag" >/dev/null 2>&1; then
        echo "$tag exists (REBUILD=1 to rebuild)"
        return
    fi
    start=$(date +%s.%N)
    docker build --network host ${REBUILD:+--no-cache} --build-arg BASE_IMAGE="$BASE" -t "$tag" "$dir" \
        > "logs/build-${dir##*/}.log" 2>&1 || { tail -30 "logs/build-${dir##*/}.log"; exit 1; }
    end=$(date +%s.%N)
    printf '%s built in %.1f s\n' "$tag" "$(echo "$end - $start" | bc)" | tee -a logs/build-times.txt
}
build_standin postgres:16 standins/postgres
build_standin redis:7 standins/redis

# 2. The dendrite image under the name the compose file gives it (so `up` need not build).
docker tag dendrite:local dendrite:latest
docker images --format '{{.Repository}}:{{.Tag}} {{.Size}}' \
    | grep -E '^(dendrite|postgres|redis|dendrite-local/python):' | tee logs/image-sizes.txt

# 3. The real compose file, driven end to end; always torn down.
if [[ -n "${BUILD:-}" ]]; then
    export DRIVE_COMPOSE_FILES="$REPO/docker-compose.yml:$HERE/docker-compose.override.yml"
    export DRIVE_UP_ARGS=--build
    COMPOSE+=(-f "$HERE/docker-compose.override.yml")
fi
"${COMPOSE[@]}" config -q
trap '"${COMPOSE[@]}" logs --no-color > logs/compose.log 2>&1 || true;
      "${COMPOSE[@]}" down -v 2>&1 | tee logs/down.log' EXIT
python3 -u "$HERE/drive.py" 2>&1 | tee logs/drive.log
