-- Give a place back. Idempotent: a place is released at most once.
-- KEYS[1] the day's counts hash, KEYS[2] the slot's holds hash
-- ARGV[1] slot start, ARGV[2] appointment id
-- Returns 1 when a place was released, 0 when the id held none.
if redis.call('HDEL', KEYS[2], ARGV[2]) == 1 then
  redis.call('HSET', KEYS[1], ARGV[1], redis.call('HLEN', KEYS[2]))
  return 1
end
return 0
