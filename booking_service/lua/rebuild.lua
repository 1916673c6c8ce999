-- Rebuild one hospital-day's records from MongoDB's appointments, unless already built.
-- KEYS[1] the day's counts hash, KEYS[2..n] the holds hash of each slot in ARGV[2]
-- ARGV[1] time to live of the records, seconds
-- ARGV[2] JSON list aligned with KEYS[2..]: {"slot": "17:00", "capacity": 15,
--         "held": [[id, serial], ...] (confirmed), "pending": [id, ...] (oldest first)}
-- Confirmed appointments keep their serials; pending ones get places while any are free.
-- Returns 1 when built, 0 when the day was already built (a concurrent rebuild won).
if redis.call('HEXISTS', KEYS[1], '_ready') == 1 then
  return 0
end
redis.call('DEL', KEYS[1])
local spec = cjson.decode(ARGV[2])
for i, slot in ipairs(spec) do
  local key = KEYS[i + 1]
  redis.call('DEL', key)
  local used = {}
  for _, pair in ipairs(slot.held) do
    redis.call('HSET', key, pair[1], pair[2])
    used[tonumber(pair[2])] = true
  end
  local serial = 1
  for _, id in ipairs(slot.pending) do
    if redis.call('HLEN', key) >= tonumber(slot.capacity) then
      break
    end
    while used[serial] do
      serial = serial + 1
    end
    redis.call('HSET', key, id, serial)
    used[serial] = true
  end
  redis.call('HSET', KEYS[1], slot.slot, redis.call('HLEN', key))
  redis.call('EXPIRE', key, ARGV[1])
end
redis.call('HSET', KEYS[1], '_ready', 1)
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
