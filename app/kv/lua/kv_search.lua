-- include: _kv_lib
-- Full-text search over the buckets with search on (read-only; the index is _search_lib.lua's).
-- KEYS[1] the tenant's search_buckets set (routes the script to the tenant's slot).
-- ARGV[1] tenant prefix  ARGV[2] page size  ARGV[3..5] cursor: score (%.17g), bucket, key ('' = first page)
-- ARGV[6] most candidates one alternative may visit in one bucket  ARGV[7] most terms a prefix may expand to
-- ARGV[8] key prefix the caller is limited to ('' = any)  ARGV[9] bucket ('' = every bucket with search on)
-- ARGV[10] the buckets the caller may use, joined by ' ' ('*' = every one)
-- ARGV[11..] the query: 'OR' between alternatives; items '+t <term>', '-t <term>' (must / must not
-- hold), '+p <term> <term>...' (phrase), '+x <prefix>' (a term starting with it).
-- Cost: per alternative and bucket, its rarest item's posting list (ZCARD of each item's terms,
-- then one HMGET per candidate of that list; a phrase also re-reads the candidate's value), never
-- a scan of the bucket. Expired entries never match (their expiry is checked, swept or not).
-- Ranking: BM25 (k1 1.2, b 0.75) over the query's positive terms, per bucket statistics.
-- Returns {'OK', total matches, next cursor {score, bucket, key} or {}, {bucket, key, score, v, enc,
-- ver, rev, c, u, x, tags ...}, now} or {'E', 'bucket_not_found' | 'search_off' | 'search_building' |
-- 'query_too_broad', detail}.
local tp, limit = ARGV[1], tonumber(ARGV[2])
local c_score, c_bucket, c_key = tonumber(ARGV[3]), ARGV[4], ARGV[5]
local max_cand, max_expand, kprefix, only = tonumber(ARGV[6]), tonumber(ARGV[7]), ARGV[8], ARGV[9]
local function esc(t) return (string.gsub(t, '[^%w]', '%%%0')) end
local clauses = {{must = {}, nots = {}}}
local positive, prefixes = {}, {}
for i = 11, #ARGV do
  local a = ARGV[i]
  if a == 'OR' then
    clauses[#clauses + 1] = {must = {}, nots = {}}
  else
    local item = {kind = string.sub(a, 2, 2), terms = {}}
    for t in string.gmatch(string.sub(a, 4), '%S+') do item.terms[#item.terms + 1] = t end
    if string.sub(a, 1, 1) == '+' then
      table.insert(clauses[#clauses].must, item)
      for _, t in ipairs(item.terms) do
        if item.kind == 'x' then prefixes[t] = ' (' .. esc(t) .. '[^ :]*):(%d+)'
        else positive[t] = ' ' .. esc(t) .. ':(%d+)' end
      end
    else
      table.insert(clauses[#clauses].nots, item)
    end
  end
end
local allowed = nil
if ARGV[10] ~= '*' then
  allowed = {}
  for n in string.gmatch(ARGV[10], '%S+') do allowed[n] = true end
end
local names
if only ~= '' then names = {only} else names = redis.call('ZRANGE', search_buckets_key(tp), 0, -1) end

local function has_term(s, t) return string.find(s, ' ' .. t .. ':', 1, true) ~= nil end
local function has_prefix(s, p) return string.find(s, ' ' .. p, 1, true) ~= nil end
local function phrase_in(fields, p)
  for _, f in ipairs(fields) do
    for i = 1, #f - #p + 1 do
      local ok = true
      for j = 1, #p do
        if f[i + j - 1] ~= p[j] then ok = false break end
      end
      if ok then return true end
    end
  end
  return false
end

local now = server_ms()
local K1, B = 1.2, 0.75
local hits = {}
for _, name in ipairs(names) do
  local m = redis.call('HMGET', bucket_key(tp, name), 'id', 'search', 'sdocs', 'slen')
  if not m[1] then
    if only ~= '' then return {'E', 'bucket_not_found', ''} end
  elseif m[2] ~= '1' then
    if only ~= '' and m[2] == 'b' then return {'E', 'search_building', ''} end
    if only ~= '' then return {'E', 'search_off', ''} end
  elseif not allowed or allowed[name] then
    local bid, n = m[1], tonumber(m[3]) or 0
    local avgdl = (tonumber(m[4]) or 0) / math.max(n, 1)
    if avgdl <= 0 then avgdl = 1 end
    local dict = search_terms_key(tp, bid)
    local cards, idfs, expansions = {}, {}, {}
    local function card(t)
      if not cards[t] then cards[t] = redis.call('ZCARD', search_posting_key(tp, bid, t)) end
      return cards[t]
    end
    local function idf(t)
      if not idfs[t] then
        local df = card(t)
        idfs[t] = math.log(1 + (n - df + 0.5) / (df + 0.5))
      end
      return idfs[t]
    end
    local function expand(p)
      if not expansions[p] then
        expansions[p] = redis.call('ZRANGEBYLEX', dict, '[' .. p, '[' .. p .. string.rep('\255', 65), 'LIMIT', 0, max_expand + 1)
      end
      return expansions[p]
    end
    local matched = {}
    for _, cl in ipairs(clauses) do
      local best, best_cost = nil, nil
      for _, it in ipairs(cl.must) do
        local cost = 0
        if it.kind == 'x' then
          local e = expand(it.terms[1])
          if #e > max_expand then return {'E', 'query_too_broad', it.terms[1] .. '*'} end
          for _, t in ipairs(e) do cost = cost + card(t) end
        else
          cost = nil
          for _, t in ipairs(it.terms) do
            if not cost or card(t) < cost then cost, it.rare = card(t), t end
          end
        end
        if not best_cost or cost < best_cost then best, best_cost = it, cost end
      end
      if best and best_cost > 0 then
        if best_cost > max_cand then return {'E', 'query_too_broad', tostring(best_cost)} end
        local cands = {}
        if best.kind == 'x' then
          local dedup = {}
          for _, t in ipairs(expand(best.terms[1])) do
            for _, k in ipairs(redis.call('ZRANGE', search_posting_key(tp, bid, t), 0, -1)) do
              if not dedup[k] then dedup[k] = true; cands[#cands + 1] = k end
            end
          end
        else
          cands = redis.call('ZRANGE', search_posting_key(tp, bid, best.rare), 0, -1)
        end
        for _, key in ipairs(cands) do
          if not matched[key] and (kprefix == '' or string.sub(key, 1, #kprefix) == kprefix) then
            local e = redis.call('HMGET', entry_key(tp, bid, key), 's', 'x')
            local s = e[1]
            local ok = s and not (e[2] and tonumber(e[2]) <= now)
            local phrases = false
            if ok then
              for _, it in ipairs(cl.must) do
                if it.kind == 'x' then ok = has_prefix(s, it.terms[1])
                else
                  for _, t in ipairs(it.terms) do if not has_term(s, t) then ok = false break end end
                  if ok and it.kind == 'p' then phrases = true end
                end
                if not ok then break end
              end
            end
            if ok then
              for _, it in ipairs(cl.nots) do
                if it.kind == 'x' then
                  if has_prefix(s, it.terms[1]) then ok = false end
                else
                  local all = true
                  for _, t in ipairs(it.terms) do if not has_term(s, t) then all = false break end end
                  if all and it.kind == 'p' then phrases = true; it.check = true
                  elseif all then ok = false end
                end
                if not ok then break end
              end
            end
            if ok and phrases then
              local v = redis.call('HMGET', entry_key(tp, bid, key), 'v', 'enc', 'tags')
              local fields = search_doc(key, v[1], v[2], v[3], true).fields
              for _, it in ipairs(cl.must) do
                if it.kind == 'p' and not phrase_in(fields, it.terms) then ok = false end
              end
              for _, it in ipairs(cl.nots) do
                if it.check then
                  if phrase_in(fields, it.terms) then ok = false end
                  it.check = nil
                end
              end
            end
            for _, it in ipairs(cl.nots) do it.check = nil end
            if ok then
              matched[key] = true
              local dl = tonumber(string.match(s, '^(%d+)')) or 0
              local norm = K1 * (1 - B + B * dl / avgdl)
              local score = 0
              for t, pat in pairs(positive) do
                local tf = tonumber(string.match(s, pat))
                if tf then score = score + idf(t) * tf * (K1 + 1) / (tf + norm) end
              end
              for _, pat in pairs(prefixes) do
                for t, tf in string.gmatch(s, pat) do
                  tf = tonumber(tf)
                  score = score + idf(t) * tf * (K1 + 1) / (tf + norm)
                end
              end
              hits[#hits + 1] = {tonumber(string.format('%.17g', score)), name, key, bid}
            end
          end
        end
      end
    end
  end
end

-- The page: the best `limit` hits after the cursor (and one more, to know whether a page follows),
-- kept in order in one pass; a full sort of every match would cost more than finding them.
local function ahead(a, b)
  if a[1] ~= b[1] then return a[1] > b[1] end
  if a[2] ~= b[2] then return a[2] < b[2] end
  return a[3] < b[3]
end
local cursor = nil
if c_score then cursor = {c_score, c_bucket, c_key} end
local top = {}
for _, h in ipairs(hits) do
  if (not cursor or ahead(cursor, h)) and (#top <= limit or ahead(h, top[#top])) then
    local i = #top
    top[i + 1] = h
    while i >= 1 and ahead(h, top[i]) do
      top[i + 1] = top[i]
      top[i] = h
      i = i - 1
    end
    if #top > limit + 1 then top[#top] = nil end
  end
end
local out = {}
for i = 1, math.min(limit, #top) do
  local h = top[i]
  local f = redis.call('HMGET', entry_key(tp, h[4], h[3]), unpack(ENTRY_FIELDS))
  for j = 1, 8 do if not f[j] then f[j] = '' end end
  out[#out + 1] = {h[2], h[3], string.format('%.17g', h[1]), f}
end
local next_cursor = {}
if #top > limit then
  local h = top[limit]
  next_cursor = {string.format('%.17g', h[1]), h[2], h[3]}
end
return {'OK', #hits, next_cursor, out, now}
