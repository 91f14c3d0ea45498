-- Full-text search index of buckets with `search` on (included by _kv_lib.lua, before it).
-- Everything here runs only for such a bucket: a bucket without search costs no command of it.
--
-- What is indexed, per entry: its key name, its tags (names and values) and, for a JSON value
-- (not a base64 one), every string in it (nested objects and arrays included; object member names,
-- numbers, booleans and null are not). Each of these strings is one field: a phrase matches inside
-- one field. Tokenizer: ASCII letters are lowercased; a term is a run of ASCII letters and digits
-- and bytes >= 0x80 (so UTF-8 letters of other scripts stay inside words, unfolded); every other
-- byte separates terms. A term longer than SEARCH_TERM_MAX bytes is cut to its first SEARCH_TERM_MAX
-- bytes; at most SEARCH_TERMS_MAX distinct terms are indexed per entry (the first ones met: key
-- name, tags, then the value), further new terms are ignored (they still count in the length);
-- only the first SEARCH_TOKENS_MAX terms of an entry are read at all (a long text costs a write
-- no more than that).
--
-- Keys (bucket incarnation bid):
--   search_posting_key(tp, bid, term)  sorted set: key -> term frequency in that entry
--   search_terms_key(tp, bid)          sorted set (score 0, lex order): every term with a posting list
--   entry field 's'                    '<length> <term>:<tf> <term>:<tf> ...' (what to remove later)
--   bucket fields sdocs, slen, sbytes  entries indexed, their total length (BM25), index bytes
--   search_buckets_key(tp)             sorted set (score 0): the tenant's buckets with search on
-- Index bytes (bucket field sbytes) count in kv_bytes and the bucket's bytes, against max_kv_bytes:
-- per entry, the length of its field 's' + 1, and per distinct term #key + #term + 8.

local SEARCH_TERM_MAX = 64
local SEARCH_TERMS_MAX = 1000
local SEARCH_TOKENS_MAX = 10000

-- Appends the terms of `s` as one field to `doc` (see search_doc).
local function search_field(doc, s)
  local field = {}
  for w in string.gmatch(string.lower(s), '[%w\128-\255]+') do
    if doc.len >= SEARCH_TOKENS_MAX then break end
    if #w > SEARCH_TERM_MAX then w = string.sub(w, 1, SEARCH_TERM_MAX) end
    doc.len = doc.len + 1
    field[#field + 1] = w
    local tf = doc.tf[w]
    if tf then
      doc.tf[w] = tf + 1
    elseif #doc.terms < SEARCH_TERMS_MAX then
      doc.tf[w] = 1
      doc.terms[#doc.terms + 1] = w
    end
  end
  if doc.fields then doc.fields[#doc.fields + 1] = field end
end

local function search_walk(doc, v, depth)
  local t = type(v)
  if doc.len >= SEARCH_TOKENS_MAX then return end
  if t == 'string' then
    search_field(doc, v)
  elseif t == 'table' and depth < 200 then
    for _, x in pairs(v) do search_walk(doc, x, depth + 1) end
  end
end

-- The terms of an entry: {len = tokens, terms = {distinct terms in order}, tf = {term -> count}},
-- with `fields` (each field's token list) when `with_fields`.
local function search_doc(key, value, enc, tags_json, with_fields)
  local doc = {len = 0, terms = {}, tf = {}}
  if with_fields then doc.fields = {} end
  search_field(doc, key)
  if tags_json and tags_json ~= '' and tags_json ~= '{}' then
    local ok, tags = pcall(cjson.decode, tags_json)
    if ok and type(tags) == 'table' then
      for k, v in pairs(tags) do
        search_field(doc, tostring(k))
        search_walk(doc, v, 0)
      end
    end
  end
  if (not enc or enc == '') and value and value ~= '' then
    local ok, decoded = pcall(cjson.decode, value)
    if ok then search_walk(doc, decoded, 0) end
  end
  return doc
end

-- A stored field 's' parsed: length, {term -> tf}, {terms in order}.
local function search_parse(s)
  local tf, terms = {}, {}
  if not s or s == '' then return 0, tf, terms end
  local len = tonumber(string.match(s, '^(%d+)')) or 0
  for t, n in string.gmatch(s, '([^%s:]+):(%d+)') do
    tf[t] = tonumber(n)
    terms[#terms + 1] = t
  end
  return len, tf, terms
end

local function search_size(key, s, terms)
  local size = #s + 1
  for _, t in ipairs(terms) do size = size + #key + #t + 8 end
  return size
end

-- What indexing `value` for `key` would change, before any write: {s, doc, old_s, delta bytes}.
-- `exists`: the entry is live (its stored 's' is read); else it has no postings.
local function search_prepare(tp, b, key, value, enc, tags_json, exists)
  local doc = search_doc(key, value, enc, tags_json, false)
  local parts = {tostring(doc.len)}
  for _, t in ipairs(doc.terms) do parts[#parts + 1] = t .. ':' .. doc.tf[t] end
  local s = table.concat(parts, ' ')
  local old = false
  if exists then old = redis.call('HGET', entry_key(tp, b.id, key), 's') end
  local old_size = 0
  if old then
    local _, _, old_terms = search_parse(old)
    old_size = search_size(key, old, old_terms)
  end
  return {s = s, doc = doc, old = old, delta = search_size(key, s, doc.terms) - old_size}
end

-- Takes `key` off the posting list of `t`; the term leaves the bucket's terms with its last entry.
local function search_drop_posting(tp, bid, dict, t, key)
  local posting = search_posting_key(tp, bid, t)
  redis.call('ZREM', posting, key)
  if redis.call('ZCARD', posting) == 0 then redis.call('ZREM', dict, t) end
end

-- Applies a prepared index change (the entry's field 's' is written by the caller's HSET).
local function search_apply(tp, b, key, p)
  local old_len, old_tf, old_terms = search_parse(p.old)
  local dict = search_terms_key(tp, b.id)
  for _, t in ipairs(p.doc.terms) do
    local tf = p.doc.tf[t]
    if old_tf[t] ~= tf then redis.call('ZADD', search_posting_key(tp, b.id, t), tf, key) end
    if not old_tf[t] then redis.call('ZADD', dict, 0, t) end
  end
  for _, t in ipairs(old_terms) do
    if not p.doc.tf[t] then
      search_drop_posting(tp, b.id, dict, t, key)
    end
  end
  local docs = 1
  if p.old then docs = 0 end
  if docs ~= 0 then redis.call('HINCRBY', b.bkey, 'sdocs', docs) end
  if p.doc.len ~= old_len then redis.call('HINCRBY', b.bkey, 'slen', p.doc.len - old_len) end
  if p.delta ~= 0 then redis.call('HINCRBY', b.bkey, 'sbytes', p.delta) end
end

-- Removes a live entry's postings (before its hash is deleted); returns the index bytes freed.
local function search_unindex(tp, b, key)
  local ek = entry_key(tp, b.id, key)
  local s = redis.call('HGET', ek, 's')
  if not s then return 0 end
  local len, _, terms = search_parse(s)
  local dict = search_terms_key(tp, b.id)
  for _, t in ipairs(terms) do search_drop_posting(tp, b.id, dict, t, key) end
  local size = search_size(key, s, terms)
  redis.call('HINCRBY', b.bkey, 'sdocs', -1)
  if len ~= 0 then redis.call('HINCRBY', b.bkey, 'slen', -len) end
  redis.call('HINCRBY', b.bkey, 'sbytes', -size)
  return size
end

-- Bucket purge: drops up to `budget` posting lists of a deleted bucket incarnation (its entries,
-- with their field 's', are deleted by the purge). Returns the terms left.
local function search_purge_terms(tp, bid, budget)
  local dict = search_terms_key(tp, bid)
  if budget > 0 then
    local terms = redis.call('ZRANGE', dict, 0, budget - 1)
    for _, t in ipairs(terms) do redis.call('DEL', search_posting_key(tp, bid, t)) end
    if #terms > 0 then redis.call('ZREM', dict, unpack(terms)) end
  end
  return redis.call('ZCARD', dict)
end
