# syntax=docker/dockerfile:1
# Multi-stage: build a wheel, install it into a slim runtime as a non-root user.
FROM python:3.11-slim AS build
WORKDIR /src
COPY setup.cfg pyproject.toml README.md ./
COPY src ./src
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
RUN groupadd --gid 10001 orchestrator && useradd --uid 10001 --gid 10001 --no-create-home orchestrator
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["ai-storage-orchestrator"]
CMD ["serve", "--host=0.0.0.0", "--port=8080", "--auth=kubernetes"]
