"""The HTTP layer: blueprints and schemas (no business rules)."""
