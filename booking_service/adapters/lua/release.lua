-- Give the places of an appointment or a hold back. Idempotent: released at most once.
-- KEYS[1] the day's counts hash, KEYS[2] the slot's holds hash, KEYS[3] the day's live
-- events stream
-- ARGV[1] slot start, ARGV[2] the field (appointment id, or `h:`/`o:` and a hold id),
-- ARGV[3] entries the stream keeps
-- Returns 1 when places were released, 0 when the field held none (a hold past its time
-- holds none).
local now = now_ms()
local value = redis.call('HGET', KEYS[2], ARGV[2])
if not value then
  return 0
end
local _, _, expires = parse(value)
redis.call('HDEL', KEYS[2], ARGV[2])
write_counts(KEYS[1], ARGV[1], tally(KEYS[2], now))
announce(KEYS[3], ARGV[3], false, KEYS[1])
if expires ~= 0 and expires <= now then
  return 0
end
return 1
