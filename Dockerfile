# Pantau's image: the ingester, the API and the simulators share it (`pantau <command>`).
FROM python:3.11-slim-bookworm
WORKDIR /app
COPY pyproject.toml README.md ./
COPY pantau ./pantau
COPY ingest ./ingest
COPY devices ./devices
COPY api ./api
COPY simulators ./simulators
COPY dashboards ./dashboards
RUN pip install --no-cache-dir . && useradd --system --uid 10001 pantau
USER pantau
ENTRYPOINT ["pantau"]
