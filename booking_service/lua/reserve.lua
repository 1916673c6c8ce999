-- Take one place in a slot, atomically.
-- KEYS[1] the day's counts hash, KEYS[2] the slot's holds hash (same hash tag)
-- ARGV[1] slot start, ARGV[2] appointment id, ARGV[3] capacity, ARGV[4] time to live, seconds
-- Returns {1, serial} held (also when this id already holds a place), {0, booked} full,
-- {-1, 0} when the day's records are not built from MongoDB (the caller rebuilds first).
if redis.call('HEXISTS', KEYS[1], '_ready') == 0 then
  return {-1, 0}
end
local held = redis.call('HGET', KEYS[2], ARGV[2])
if held then
  return {1, tonumber(held)}
end
local booked = redis.call('HLEN', KEYS[2])
if booked >= tonumber(ARGV[3]) then
  return {0, booked}
end
-- the smallest serial no active appointment of the slot has
local used = {}
for _, s in ipairs(redis.call('HVALS', KEYS[2])) do
  used[tonumber(s)] = true
end
local serial = 1
while used[serial] do
  serial = serial + 1
end
redis.call('HSET', KEYS[2], ARGV[2], serial)
redis.call('HSET', KEYS[1], ARGV[1], booked + 1)
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
return {1, serial}
