-- Count a hold against its user's live holds, atomically: at most ARGV[3] at once.
-- KEYS[1] the user's sorted set, hold id -> expiry (ms, by this Redis's clock)
-- ARGV[1] hold id, ARGV[2] its expiry, ARGV[3] the limit
-- Returns 1 when counted, 0 when the user holds the limit already.
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
redis.call('PEXPIREAT', KEYS[1], redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2])
return 1
