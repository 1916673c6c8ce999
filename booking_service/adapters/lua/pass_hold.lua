-- Pass a live hold's place to another holder, atomically: a waitlist offer that ran out or
-- was declined goes to the next entry with its serial and units, so no booking can take the
-- place in between.
-- KEYS[1] the day's counts hash, KEYS[2] the slot's holds hash, KEYS[3] the day's live
-- events stream
-- ARGV[1] slot start, ARGV[2] the hold's field, ARGV[3] the new holder's field, ARGV[4] its
-- life, ms (by this Redis's clock), ARGV[5] time to live, seconds, ARGV[6] entries the
-- stream keeps
-- Returns {1, serial, expires_ms} passed, {0, 0, 0} when the hold is gone (past its time,
-- released or taken), {-1, 0, 0} when the day's records are not built.
if redis.call('HEXISTS', KEYS[1], '_ready') == 0 then
  return {-1, 0, 0}
end
local now = now_ms()
local value = redis.call('HGET', KEYS[2], ARGV[2])
if not value then
  return {0, 0, 0}
end
local serial, units, expires = parse(value)
if expires == 0 then
  return {0, 0, 0}  -- an appointment's place, not a hold's
end
redis.call('HDEL', KEYS[2], ARGV[2])
local passed = expires > now
local until_ms = now + tonumber(ARGV[4])
if passed then
  redis.call('HSET', KEYS[2], ARGV[3], serial .. ':' .. units .. ':' .. until_ms)
end
write_counts(KEYS[1], ARGV[1], tally(KEYS[2], now))
redis.call('EXPIRE', KEYS[1], ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[5])
announce(KEYS[3], ARGV[6], ARGV[5])
if not passed then
  return {0, 0, 0}
end
return {1, serial, until_ms}
