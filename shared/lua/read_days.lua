-- Read, in one call, a hospital's published configuration version, the marker that every
-- day's capacity records are complete, and the counts hash of each requested day.
-- KEYS[1] the version key, KEYS[2] the complete marker, KEYS[3..n] the days' counts hashes
-- Returns {version or false, marker or false, {field, value, ...} per day}. Reads only.
local out = {redis.call('GET', KEYS[1]) or false, redis.call('GET', KEYS[2]) or false}
for i = 3, #KEYS do
  out[i] = redis.call('HGETALL', KEYS[i])
end
return out
