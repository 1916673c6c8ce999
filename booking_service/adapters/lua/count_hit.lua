-- Count one hit of a rate limit and start its window on the first: the count after it.
-- KEYS[1] the counter; ARGV[1] the window, seconds
local count = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[1], 'NX')
return count
