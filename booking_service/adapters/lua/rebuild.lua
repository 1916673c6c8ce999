-- Rebuild one hospital-day's records (the hospital's own, or one doctor's) from MongoDB,
-- unless already built.
-- KEYS[1] the day's counts hash, KEYS[2] the day's live events stream,
-- KEYS[3..n] the holds hash of each slot in ARGV[2]
-- ARGV[1] time to live of the records, seconds
-- ARGV[3] entries the stream keeps
-- ARGV[2] JSON list aligned with KEYS[3..]: {"slot": "17:00", "capacity": 15,
--         "held": [[id, serial, units], ...] (confirmed),
--         "pending": [[field, units, expires_ms, always], ...] (live holds first, then oldest
--         first: appointments written ahead of their place, expires_ms 0; appointments
--         moving here)}
-- Confirmed appointments keep their serials; the pending get places in order while their
-- units fit; `always` (1: a live hold, which had its place) whether or not it fits (an edit
-- lowered the capacity meanwhile; a hold past its time gets none). Returns 1 when built, 0 when the day was
-- already built (a concurrent rebuild won).
if redis.call('HEXISTS', KEYS[1], '_ready') == 1 then
  return 0
end
redis.call('DEL', KEYS[1])
local now = now_ms()
local spec = cjson.decode(ARGV[2])
for i, slot in ipairs(spec) do
  local key = KEYS[i + 2]
  redis.call('DEL', key)
  local state = {used = {}}
  local taken = 0
  for _, held in ipairs(slot.held) do
    local serial, units = tonumber(held[2]), tonumber(held[3])
    redis.call('HSET', key, held[1], appointment_value(serial, units))
    state.used[serial] = true
    taken = taken + units
  end
  for _, pending in ipairs(slot.pending) do
    local units, expires = tonumber(pending[2]), tonumber(pending[3])
    local fits = pending[4] == 1 or taken + units <= tonumber(slot.capacity)
    if fits and (expires == 0 or expires > now) then
      local serial = free_serial(state)
      if expires == 0 then
        redis.call('HSET', key, pending[1], appointment_value(serial, units))
      else
        redis.call('HSET', key, pending[1], serial .. ':' .. units .. ':' .. expires)
      end
      state.used[serial] = true
      taken = taken + units
    end
  end
  write_counts(KEYS[1], slot.slot, tally(key, now))
  redis.call('EXPIRE', key, ARGV[1])
end
redis.call('HSET', KEYS[1], '_ready', 1)
redis.call('EXPIRE', KEYS[1], ARGV[1])
announce(KEYS[2], ARGV[3], ARGV[1])
return 1
