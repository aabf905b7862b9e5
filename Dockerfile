# syntax=docker/dockerfile:1
# Build: docker build -t roomlio-notifier .
# Run:   docker run -v $PWD/rules.yaml:/config/rules.yaml:ro -v notifier-data:/data \
#          -p 127.0.0.1:9464:9464 -e ROOMLIO_API_KEY -e CRM_WEBHOOK_SECRET roomlio-notifier
# In rules.yaml set `state: /data/notifier.db` so the state survives the container, and
# `server: {listen: 0.0.0.0:9464}` for metrics, health and the status page (the
# container's loopback is not the host's; publish the port on the host's loopback only).

FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY notifier ./notifier
RUN python -m venv /opt/notifier \
 && /opt/notifier/bin/pip install --no-cache-dir .

FROM python:3.11-slim
RUN useradd --system --uid 10001 --home-dir /data notifier \
 && mkdir -p /data /config && chown notifier /data
COPY --from=build /opt/notifier /opt/notifier
ENV PATH=/opt/notifier/bin:$PATH PYTHONUNBUFFERED=1 NOTIFIER_HEALTH_URL=http://127.0.0.1:9464/healthz
USER notifier
WORKDIR /data
VOLUME ["/data"]
EXPOSE 9464
# slim has no curl: the healthcheck asks /healthz with the standard library
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os,sys,urllib.request; sys.exit(0 if urllib.request.urlopen(os.environ['NOTIFIER_HEALTH_URL'], timeout=4).status == 200 else 1)"]
# exec form: the notifier is PID 1 and receives SIGTERM itself (graceful drain)
ENTRYPOINT ["notifier"]
CMD ["run", "--config", "/config/rules.yaml"]
