# One image for the three services (schedule, booking, gateway) and the one-shot seed.
# Which process runs is chosen by the command: docker-compose.yml gives each service an
# explicit gunicorn command; the default CMD below serves $APP_MODULE on $PORT.
FROM python:3.11-slim

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
COPY gateway/ gateway/
COPY devstack/ devstack/
RUN pip install --no-deps . \
 && rm -rf build ./*.egg-info

# Run from an empty directory so imports come from the installed package, not /src.
WORKDIR /app
USER 10001:10001

# PROMETHEUS_MULTIPROC_DIR: prometheus-client's multiprocess mode, so /metrics sums every
# gunicorn worker. /dev/shm is the container's own tmpfs: empty at each container start, as the
# directory must be (shared/metrics.py creates it).
# WORKER_CLASS: the gateway is an aiohttp app (aiohttp.GunicornWebWorker); the two services are
# WSGI apps on gthread workers (GUNICORN_THREADS each), as docker-compose.yml runs them.
ENV PORT=8000 \
    APP_MODULE="gateway:create_app()" \
    WORKER_CLASS="aiohttp.GunicornWebWorker" \
    WEB_CONCURRENCY=2 \
    GUNICORN_THREADS=4 \
    PROMETHEUS_MULTIPROC_DIR=/dev/shm/slotbook-metrics
EXPOSE 8000 8001 8002

# Shell form so ${PORT} etc. are expanded at run time; exec makes gunicorn PID 1 so that it
# receives SIGTERM from `docker stop` and shuts down gracefully. Never --preload.
CMD exec gunicorn "${APP_MODULE}" --bind "0.0.0.0:${PORT}" --worker-class "${WORKER_CLASS}" \
    --workers "${WEB_CONCURRENCY}" --threads "${GUNICORN_THREADS}" \
    --worker-tmp-dir /dev/shm --graceful-timeout 25 --no-control-socket --access-logfile -
