-- tables.lua: builds and drops tables and strings (alloclab programs)
local n = tonumber(arg[1]) or 200000
local checksum = 0
for round = 1, 5 do
  local t = {}
  for i = 1, n do
    t[i] = { id = i, name = "item" .. i .. ":" .. round, tags = { i % 7, i % 11, "t" .. (i % 13) } }
  end
  local m = {}
  for i = 1, n, 3 do
    local e = t[i]
    m[e.name] = e
    checksum = (checksum + #e.name + e.tags[1]) % 1000000007
  end
  local parts = {}
  for i = 1, n // 10 do
    parts[#parts + 1] = string.format("%d-%s", i, t[i].tags[3])
  end
  local s = table.concat(parts, ",")
  checksum = (checksum + #s) % 1000000007
  for k in pairs(m) do
    if #k % 2 == 0 then m[k] = nil end
  end
  t, m, parts, s = nil, nil, nil, nil
  collectgarbage("collect")
end
print(string.format("tables.lua: n=%d checksum=%d", n, checksum))
