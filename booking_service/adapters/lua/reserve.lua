-- Take `units` places of a slot's capacity for one appointment or one hold, atomically: all
-- or none. Holds past their time are dropped first: they never block anyone.
-- KEYS[1] the day's counts hash, KEYS[2] the slot's holds hash, KEYS[3] the day's live
-- events stream (shared/events.py), all under the same hash tag
-- ARGV[1] slot start, ARGV[2] the field (an appointment id, or `h:`/`o:` and a hold id),
-- ARGV[3] capacity (units), ARGV[4] time to live, seconds, ARGV[5] units it takes,
-- ARGV[6] entries the stream keeps, ARGV[7] a hold's life in ms (0: an appointment)
-- Returns {1, serial, expires_ms} held (also when this field already holds a live place),
-- {0, units taken} full, {-1, 0} when the day's records are not built from MongoDB (the
-- caller rebuilds first).
if redis.call('HEXISTS', KEYS[1], '_ready') == 0 then
  return {-1, 0}
end
local now = now_ms()
local mine = redis.call('HGET', KEYS[2], ARGV[2])
if mine then
  local serial, _, expires = parse(mine)
  if expires == 0 or expires > now then
    return {1, serial, expires}
  end
end
local state = tally(KEYS[2], now)
local units = tonumber(ARGV[5])
if state.booked + state.held + units > tonumber(ARGV[3]) then
  if state.dropped > 0 then
    write_counts(KEYS[1], ARGV[1], state)
    announce(KEYS[3], ARGV[6], ARGV[4])
  end
  return {0, state.booked + state.held}
end
local serial = free_serial(state)
local life = tonumber(ARGV[7])
local expires = 0
if life > 0 then
  expires = now + life
  redis.call('HSET', KEYS[2], ARGV[2], serial .. ':' .. units .. ':' .. expires)
  state.held = state.held + units
  if string.sub(ARGV[2], 1, 2) == 'o:' then
    state.offered = state.offered + units
  end
  if not state.earliest or expires < state.earliest then
    state.earliest = expires
  end
else
  redis.call('HSET', KEYS[2], ARGV[2], appointment_value(serial, units))
  state.booked = state.booked + units
end
write_counts(KEYS[1], ARGV[1], state)
redis.call('EXPIRE', KEYS[1], ARGV[4])
redis.call('EXPIRE', KEYS[2], ARGV[4])
-- announced in the same step as the change: once, in order, never without it
announce(KEYS[3], ARGV[6], ARGV[4])
return {1, serial, expires}
