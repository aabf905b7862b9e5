# syntax=docker/dockerfile:1
# Build: docker build -t roomlio-notifier .
# Run:   docker run -v $PWD/rules.yaml:/config/rules.yaml:ro -v notifier-data:/data \
#          -e ROOMLIO_API_KEY -e CRM_WEBHOOK_SECRET roomlio-notifier
# In rules.yaml set `state: /data/notifier.db` so the state survives the container.

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
ENV PATH=/opt/notifier/bin:$PATH PYTHONUNBUFFERED=1
USER notifier
WORKDIR /data
VOLUME ["/data"]
# exec form: the notifier is PID 1's child-free process and receives SIGTERM itself
ENTRYPOINT ["notifier"]
CMD ["run", "--config", "/config/rules.yaml"]
