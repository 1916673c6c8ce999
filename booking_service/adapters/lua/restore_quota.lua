-- Restore a user's live holds and offers into its quota set after Redis lost it (rebuilt
-- from MongoDB's records): each counted once, the set kept as long as its latest expiry.
-- KEYS[1] the user's sorted set, hold id -> expiry (ms)
-- ARGV: hold id, expiry, hold id, expiry, ...
for i = 1, #ARGV, 2 do
  redis.call('ZADD', KEYS[1], ARGV[i + 1], ARGV[i])
end
local latest = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')[2]
if latest then
  redis.call('PEXPIREAT', KEYS[1], latest)
end
return 1
