"""`make bench`: load-test the whole stack and compare each endpoint with a trivial Flask app.

Run with `python -m bench`. Settings (environment): BENCH_SECONDS (per row, default 8),
BENCH_BOOKING_SECONDS (per booking row, default 4),
BENCH_WARMUP (seconds per row, default 1), BENCH_CONNECTIONS (default 16), BENCH_LOAD_THREADS
(load-generator threads, default 2), BENCH_WORKERS / BENCH_THREADS (gunicorn, default 2 / 4),
BENCH_ENGINE (`wrk` or `python`; default wrk when on PATH), MONGO_URL / REDIS_URL (use these
databases instead of embedded ones).
"""
