-- Give an appointment's places back. Idempotent: a place is released at most once.
-- KEYS[1] the day's counts hash, KEYS[2] the slot's holds hash, KEYS[3] the day's live
-- events stream
-- ARGV[1] slot start, ARGV[2] appointment id, ARGV[3] entries the stream keeps
-- Returns 1 when places were released, 0 when the id held none.
if redis.call('HDEL', KEYS[2], ARGV[2]) == 0 then
  return 0
end
local booked = 0
for _, value in ipairs(redis.call('HVALS', KEYS[2])) do
  local units = string.match(value, ':(%d+)$')
  booked = booked + (units and tonumber(units) or 1)
end
redis.call('HSET', KEYS[1], ARGV[1], booked)
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[3], '*', 'event', 'availability')
if redis.call('TTL', KEYS[3]) < 0 then
  redis.call('EXPIRE', KEYS[3], redis.call('TTL', KEYS[1]) > 0 and redis.call('TTL', KEYS[1]) or 86400)
end
return 1
