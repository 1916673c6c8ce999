-- Rebuild one hospital-day's records (the hospital's own, or one doctor's) from MongoDB's
-- appointments, unless already built.
-- KEYS[1] the day's counts hash, KEYS[2] the day's live events stream,
-- KEYS[3..n] the holds hash of each slot in ARGV[2]
-- ARGV[1] time to live of the records, seconds
-- ARGV[3] entries the stream keeps
-- ARGV[2] JSON list aligned with KEYS[3..]: {"slot": "17:00", "capacity": 15,
--         "held": [[id, serial, units], ...] (confirmed),
--         "pending": [[id, units], ...] (oldest first)}
-- Confirmed appointments keep their serials; pending ones get places, oldest first, while
-- their units fit. Returns 1 when built, 0 when the day was already built (a concurrent
-- rebuild won).
if redis.call('HEXISTS', KEYS[1], '_ready') == 1 then
  return 0
end
redis.call('DEL', KEYS[1])
local spec = cjson.decode(ARGV[2])
local function value(serial, units)
  if units == 1 then
    return serial
  end
  return serial .. ':' .. units
end
for i, slot in ipairs(spec) do
  local key = KEYS[i + 2]
  redis.call('DEL', key)
  local used = {}
  local booked = 0
  for _, held in ipairs(slot.held) do
    local serial, units = tonumber(held[2]), tonumber(held[3])
    redis.call('HSET', key, held[1], value(serial, units))
    used[serial] = true
    booked = booked + units
  end
  local serial = 1
  for _, pending in ipairs(slot.pending) do
    local units = tonumber(pending[2])
    if booked + units <= tonumber(slot.capacity) then
      while used[serial] do
        serial = serial + 1
      end
      redis.call('HSET', key, pending[1], value(serial, units))
      used[serial] = true
      booked = booked + units
    end
  end
  redis.call('HSET', KEYS[1], slot.slot, booked)
  redis.call('EXPIRE', key, ARGV[1])
end
redis.call('HSET', KEYS[1], '_ready', 1)
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'event', 'availability')
redis.call('EXPIRE', KEYS[2], ARGV[1])
return 1
