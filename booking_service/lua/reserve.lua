-- Take `units` places of a slot's capacity for one appointment, atomically: all or none.
-- KEYS[1] the day's counts hash, KEYS[2] the slot's holds hash, KEYS[3] the day's live
-- events stream (shared/events.py), all under the same hash tag
-- ARGV[1] slot start, ARGV[2] appointment id, ARGV[3] capacity (units), ARGV[4] time to
-- live, seconds, ARGV[5] units the appointment takes, ARGV[6] entries the stream keeps
-- A holds value is the serial, or `serial:units` when the appointment takes more than one.
-- Returns {1, serial} held (also when this id already holds a place), {0, booked} full,
-- {-1, 0} when the day's records are not built from MongoDB (the caller rebuilds first).
if redis.call('HEXISTS', KEYS[1], '_ready') == 0 then
  return {-1, 0}
end
local held = redis.call('HGET', KEYS[2], ARGV[2])
if held then
  return {1, tonumber(string.match(held, '^%d+'))}
end
-- units booked, and the serials in use
local used = {}
local booked = 0
for _, value in ipairs(redis.call('HVALS', KEYS[2])) do
  local serial, units = string.match(value, '^(%d+):?(%d*)$')
  used[tonumber(serial)] = true
  booked = booked + (units == '' and 1 or tonumber(units))
end
local units = tonumber(ARGV[5])
if booked + units > tonumber(ARGV[3]) then
  return {0, booked}
end
-- the smallest serial no active appointment of the slot has
local serial = 1
while used[serial] do
  serial = serial + 1
end
redis.call('HSET', KEYS[2], ARGV[2], units == 1 and serial or (serial .. ':' .. units))
redis.call('HSET', KEYS[1], ARGV[1], booked + units)
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
-- announced in the same step as the change: once, in order, never without it
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*', 'event', 'availability')
redis.call('EXPIRE', KEYS[3], ARGV[4])
return {1, serial}
