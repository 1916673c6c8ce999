"""Database clients: built once per process (after gunicorn forks), kept in app.extensions."""

from __future__ import annotations

import redis
from flask import Flask
from pymongo import MongoClient

from .config import Config


def make_redis(cfg: Config) -> redis.Redis:
    """A Redis (or Redis Cluster) client with short timeouts: a dead Redis must fail fast."""
    kwargs = {
        "socket_timeout": cfg.redis_timeout,
        "socket_connect_timeout": cfg.redis_timeout,
        "health_check_interval": 30,
    }
    if cfg.redis_cluster:
        from redis.cluster import RedisCluster

        return RedisCluster.from_url(cfg.redis_url, **kwargs)
    return redis.Redis.from_url(cfg.redis_url, max_connections=64, **kwargs)


def make_mongo(cfg: Config) -> MongoClient:
    """A MongoDB client; timeouts bounded so a dead MongoDB answers 503, not a hang."""
    return MongoClient(
        cfg.mongo_url,
        serverSelectionTimeoutMS=cfg.mongo_timeout_ms,
        connectTimeoutMS=cfg.mongo_timeout_ms,
        socketTimeoutMS=cfg.mongo_timeout_ms * 2,
        tz_aware=True,
        appname="slotbook",
    )


def init_clients(app: Flask) -> None:
    """Create this process's clients once and keep them on the app."""
    cfg: Config = app.config["SLOTBOOK"]
    client = make_mongo(cfg)
    app.extensions["slotbook.mongo"] = client
    app.extensions["slotbook.db"] = client[cfg.mongo_db]
    app.extensions["slotbook.redis"] = make_redis(cfg)


def is_cluster(client: redis.Redis) -> bool:
    """True for a Redis Cluster client."""
    return hasattr(client, "get_nodes")


def redis_ping(client: redis.Redis) -> None:
    """Raise unless Redis answers; on a cluster every primary must answer (one PING reaches
    only one node, and the others hold the rest of the slots)."""
    if is_cluster(client):
        replies = client.ping(target_nodes=client.PRIMARIES)
        if not replies:
            raise redis.ConnectionError("no Redis Cluster primary answered")
        return
    client.ping()
