-- Shared by the gate's scripts: capacity.py prepends it to reserve, release, take_hold,
-- pass_hold and rebuild, so a slot's places are read and counted one way.
--
-- A slot's holds hash has one field per place-holder:
--   an appointment: field = its id, value `serial` or `serial:units`;
--   a hold: field `h:<hold id>` (`o:<hold id>` when offered to the waitlist), value
--   `serial:units:expires_ms`, expiry by this Redis's own clock (TIME).
-- The day's counts hash mirrors, per slot: `<slot>` units booked by appointments, `h:<slot>`
-- units held by live holds, `o:<slot>` of them offered, `e:<slot>` the earliest expiry (ms);
-- the `h:`, `o:`, `e:` fields exist only while the slot has a live hold; `_e` is the day's
-- earliest `e:`.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- serial, units, expiry (0: an appointment, which does not expire)
local function parse(value)
  local serial, units, expires = string.match(value, '^(%d+):?(%d*):?(%d*)$')
  return tonumber(serial), (units == '' and 1 or tonumber(units)),
    (expires == '' and 0 or tonumber(expires))
end

local function appointment_value(serial, units)
  if units == 1 then
    return tostring(serial)
  end
  return serial .. ':' .. units
end

-- Read a slot's holds hash, deleting holds past their time: what it holds now.
local function tally(holds, now)
  local state = {used = {}, booked = 0, held = 0, offered = 0, earliest = false, dropped = 0}
  local flat = redis.call('HGETALL', holds)
  for i = 1, #flat, 2 do
    local field = flat[i]
    local serial, units, expires = parse(flat[i + 1])
    if expires == 0 then
      state.used[serial] = true
      state.booked = state.booked + units
    elseif expires <= now then
      redis.call('HDEL', holds, field)
      state.dropped = state.dropped + 1
    else
      state.used[serial] = true
      state.held = state.held + units
      if string.sub(field, 1, 2) == 'o:' then
        state.offered = state.offered + units
      end
      if not state.earliest or expires < state.earliest then
        state.earliest = expires
      end
    end
  end
  return state
end

-- the smallest serial no place-holder of the slot has
local function free_serial(state)
  local serial = 1
  while state.used[serial] do
    serial = serial + 1
  end
  return serial
end

-- The day's earliest hold expiry, `_e` (absent without live holds): readers look at this one
-- field to know whether a slot's `e:` has passed (shared/capacity_reads.py).
local function refresh_earliest(counts)
  local flat = redis.call('HGETALL', counts)
  local earliest = false
  for i = 1, #flat, 2 do
    if string.sub(flat[i], 1, 2) == 'e:' then
      local expires = tonumber(flat[i + 1])
      if not earliest or expires < earliest then
        earliest = expires
      end
    end
  end
  if earliest then
    redis.call('HSET', counts, '_e', earliest)
  else
    redis.call('HDEL', counts, '_e')
  end
end

-- Write a slot's counts from its tally.
local function write_counts(counts, slot, state)
  redis.call('HSET', counts, slot, state.booked)
  local changed
  if state.held > 0 then
    redis.call('HSET', counts, 'h:' .. slot, state.held, 'e:' .. slot, state.earliest)
    changed = true
  else
    changed = redis.call('HDEL', counts, 'h:' .. slot, 'e:' .. slot) > 0
  end
  if state.offered > 0 then
    redis.call('HSET', counts, 'o:' .. slot, state.offered)
  else
    redis.call('HDEL', counts, 'o:' .. slot)
  end
  if changed then
    refresh_earliest(counts)
  end
end

-- Append the day's `availability` marker (shared/events.py), in the same step as the change;
-- the stream lives `ttl` seconds, or (false) as long as the day's counts.
local function announce(stream, length, ttl, counts)
  redis.call('XADD', stream, 'MAXLEN', '~', length, '*', 'event', 'availability')
  if ttl then
    redis.call('EXPIRE', stream, ttl)
  elseif redis.call('TTL', stream) < 0 then
    local left = redis.call('TTL', counts)
    redis.call('EXPIRE', stream, left > 0 and left or 86400)
  end
end
