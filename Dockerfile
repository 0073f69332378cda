# Pantau's image: the ingester, the API, the broker-auth sync and the simulators share it
# (`pantau <command>`); docker-compose.yml runs it. .dockerignore keeps out the virtualenv,
# local data, tests and benchmarks, so every package of the project is copied, new ones too.
FROM python:3.11-slim-bookworm
WORKDIR /app
COPY . .
RUN pip install --no-cache-dir . && useradd --system --uid 10001 pantau
USER pantau
ENTRYPOINT ["pantau"]
