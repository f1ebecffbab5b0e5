# syntax=docker/dockerfile:1
# Multi-stage: build wheels of the package and of its dependencies at the exact versions of constraints.txt, install
# only those (no index) into a slim runtime as a non-root user.
#
# Base image: an exact Python and Debian release, never a moving tag such as 3.11-slim. Pin its digest as well where
# the build can look it up, e.g.
#   docker buildx imagetools inspect python:3.11.13-slim-bookworm        # → Digest: sha256:…
#   docker build --build-arg PYTHON_IMAGE=python:3.11.13-slim-bookworm@sha256:… .
# No digest is written here: it could not be looked up where this file was written, and an unverified one would only
# pretend to pin.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_CONSTRAINT=/src/constraints.txt \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY constraints.txt setup.cfg pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN groupadd --gid 10001 orchestrator && useradd --uid 10001 --gid 10001 --no-create-home orchestrator
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index /wheels/*.whl && rm -rf /wheels
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["ai-storage-orchestrator"]
# TLS from a mounted Secret, as k8s/deploy/deployment.yaml does (plain HTTP off loopback is refused).
CMD ["serve", "--host=0.0.0.0", "--port=8080", "--auth=kubernetes", "--tls-cert-file=/tls/tls.crt", "--tls-key-file=/tls/tls.key"]
