# unlockbot as a container: the wheel, installed on a slim Python, run as an unprivileged user.
# Build: docker build -t unlockbot .        Run: see compose.yaml and docs/deploy.md.

ARG PYTHON_VERSION=3.11

# --- build the wheel from the source (templates/ and knowledge/ go inside it) -------------------------------
FROM python:${PYTHON_VERSION}-slim AS wheel
WORKDIR /src
COPY pyproject.toml README.md constraints.txt ./
COPY bot ./bot
COPY templates ./templates
COPY knowledge ./knowledge
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /dist -c constraints.txt .

# --- the image: the wheel and its dependencies at the versions CI tested (constraints.txt) -------------------
FROM python:${PYTHON_VERSION}-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UNLOCKBOT_BOT__DATA_DIR=/var/lib/unlockbot \
    UNLOCKBOT_HTTP__HOST=0.0.0.0 \
    UNLOCKBOT_HTTP__PORT=8080 \
    UNLOCKBOT_LOG__FORMAT=json
COPY --from=wheel /dist /dist
COPY constraints.txt /tmp/constraints.txt
# A CJK font, so the admins' `stats` chart writes its Chinese labels (without one it falls back to English).
RUN apt-get update \
    && apt-get install -y --no-install-recommends fonts-wqy-microhei \
    && rm -rf /var/lib/apt/lists/*
RUN pip install --no-cache-dir -c /tmp/constraints.txt /dist/*.whl \
    && rm -rf /dist /tmp/constraints.txt \
    && useradd --system --uid 10001 --home-dir /var/lib/unlockbot --create-home --shell /usr/sbin/nologin unlockbot
USER 10001
WORKDIR /var/lib/unlockbot
# SQLite files, the key files and console images live here unless the settings point elsewhere.
VOLUME ["/var/lib/unlockbot"]
EXPOSE 8080
# Liveness only (the event loop answers); /readyz is for the load balancer or orchestrator.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('UNLOCKBOT_HTTP__PORT', '8080') + '/healthz', timeout=4)"]
ENTRYPOINT ["unlockbot"]
CMD ["serve"]
