"""Local development stack: embedded Redis/MongoDB servers and gunicorn service processes."""
