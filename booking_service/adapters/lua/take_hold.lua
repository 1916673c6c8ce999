-- Turn a live hold into an appointment's place, atomically and once: the appointment takes
-- the hold's serial and units. A hold past its time is gone.
-- KEYS[1] the day's counts hash, KEYS[2] the slot's holds hash, KEYS[3] the day's live
-- events stream
-- ARGV[1] slot start, ARGV[2] the hold's field (`h:`/`o:` and its id), ARGV[3] the
-- appointment id, ARGV[4] time to live, seconds, ARGV[5] entries the stream keeps
-- Returns {1, serial} taken (also when this appointment already took it), {0, 0} when the
-- hold is gone (expired, released or taken by another), {-1, 0} when the day's records are
-- not built (the caller rebuilds first).
if redis.call('HEXISTS', KEYS[1], '_ready') == 0 then
  return {-1, 0}
end
local now = now_ms()
local mine = redis.call('HGET', KEYS[2], ARGV[3])
if mine then
  -- taken already (a retry, or a rebuild placed the appointment itself): the hold holds
  -- nothing more
  if redis.call('HDEL', KEYS[2], ARGV[2]) == 1 then
    write_counts(KEYS[1], ARGV[1], tally(KEYS[2], now))
    announce(KEYS[3], ARGV[5], ARGV[4])
  end
  local serial = parse(mine)
  return {1, serial}
end
local value = redis.call('HGET', KEYS[2], ARGV[2])
if not value then
  return {0, 0}
end
local serial, units, expires = parse(value)
redis.call('HDEL', KEYS[2], ARGV[2])
if expires > now then
  redis.call('HSET', KEYS[2], ARGV[3], appointment_value(serial, units))
end
write_counts(KEYS[1], ARGV[1], tally(KEYS[2], now))
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
announce(KEYS[3], ARGV[5], ARGV[4])
if expires <= now then
  return {0, 0}
end
return {1, serial}
