"""Storage and clients: repositories, the capacity gate and its Lua, the outbox, limits and
the schedule client; they own storage formats and key names."""
