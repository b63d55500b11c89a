# syntax=docker/dockerfile:1
# Innerspace: build a virtualenv in one stage, copy it into a slim runtime without build tools.

FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY app ./app
COPY index ./index
COPY encoders ./encoders
# The project itself; its dependencies are pinned or bounded in pyproject.toml.
# hadolint ignore=DL3013
RUN pip install --no-cache-dir '.[parquet]'

FROM python:3.11-slim
LABEL org.opencontainers.image.title="innerspace" \
      org.opencontainers.image.description="Maximum inner product search service"
RUN useradd --system --uid 10001 --home-dir /data innerspace \
    && mkdir -p /data && chown innerspace /data
COPY --from=build /opt/venv /opt/venv
COPY docker/entrypoint.sh /entrypoint.sh
ENV PATH=/opt/venv/bin:$PATH \
    INNERSPACE_DATA_DIR=/data \
    INNERSPACE_HOST=0.0.0.0 \
    INNERSPACE_PORT=8000 \
    PYTHONUNBUFFERED=1
USER 10001
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('INNERSPACE_PORT', '8000'), timeout=2)"]
ENTRYPOINT ["/entrypoint.sh"]
CMD ["serve"]
