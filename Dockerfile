# syntax=docker/dockerfile:1
# Multi-stage: build the project's wheel, then install into a slim runtime, as a non-root user, exactly the
# dependency files of requirements.lock (the versions of constraints.txt, each with its sha256: pip refuses another
# file, a missing hash or an sdist) and the project's wheel without dependencies.
#
# Base image: an exact Python and Debian release, never a moving tag such as 3.11-slim. Pin its digest as well where
# the build can look it up, e.g.
#   docker buildx imagetools inspect python:3.11.13-slim-bookworm        # → Digest: sha256:…
#   docker build --build-arg PYTHON_IMAGE=python:3.11.13-slim-bookworm@sha256:… .
# No digest is written here: it could not be looked up where this file was written, and an unverified one would only
# pretend to pin.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY setup.cfg pyproject.toml README.md ./
COPY src ./src
# Only the project's own code; its dependencies come from requirements.lock below. (The build backend, setuptools,
# runs in this stage only and is not part of the image.)
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --gid 10001 orchestrator && useradd --uid 10001 --gid 10001 --no-create-home orchestrator
COPY requirements.lock /wheels/requirements.lock
COPY --from=build /wheels /wheels
# pip check: the locked set is complete (every dependency of every installed distribution is there).
RUN pip install --no-cache-dir --require-hashes --only-binary=:all: --no-deps -r /wheels/requirements.lock \
    && pip install --no-cache-dir --no-index --no-deps /wheels/*.whl \
    && pip check \
    && rm -rf /wheels
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["ai-storage-orchestrator"]
# TLS from a mounted Secret, as k8s/deploy/deployment.yaml does (plain HTTP off loopback is refused).
CMD ["serve", "--host=0.0.0.0", "--port=8080", "--auth=kubernetes", "--tls-cert-file=/tls/tls.crt", "--tls-key-file=/tls/tls.key"]
