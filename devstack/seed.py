"""Seed data, idempotent: the seed hospitals (schedule_service/seed.py) and the admin account.

`python -m devstack.seed` with the services' environment (MONGO_URL, ADMIN_EMAIL, ...).
Production refuses the default admin password and token secret (Config check).
"""

from __future__ import annotations

import sys

from booking_service.adapters.repository import UserRepository
from booking_service.bootstrap import ensure_indexes as ensure_booking_indexes
from booking_service.core.accounts import ensure_admin
from schedule_service.repository import ensure_indexes as ensure_schedule_indexes
from schedule_service.seed import SEEDED, seed_hospitals
from shared.clients import make_mongo
from shared.clock import utcnow
from shared.config import Config


def seed(cfg: Config) -> dict:
    """Seed what is missing; returns what was created."""
    cfg.check_production_secrets()
    client = make_mongo(cfg)
    try:
        db = client[cfg.mongo_db]
        ensure_schedule_indexes(db)
        ensure_booking_indexes(db)
        now = utcnow()
        created = seed_hospitals(db, now)
        return {
            **{f"hospital_{h['hospital_id']}": h["hospital_id"] in created for h in SEEDED},
            "admin_user": ensure_admin(UserRepository(db), cfg, now),
        }
    finally:
        client.close()


def main() -> int:
    """Entry point of `python -m devstack.seed`."""
    created = seed(Config.from_env())
    print("seed:", ", ".join(f"{k}={'created' if v else 'present'}" for k, v in created.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
