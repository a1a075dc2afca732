-- Ember's scripting sandbox, run once when the Lua state is made.
--
-- Rust hands in `raw` (its functions: redis.call's core, sha1hex, log,
-- setresp, set_repl, the libraries' raw forms, and `wrap`) and `FAIL`,
-- the value a function returns first when it fails. This chunk builds
-- the `redis` table and the libraries around them, and returns the
-- globals table scripts see.
--
-- Lua 5.1 has no read-only tables (Redis patches its Lua for them), so
-- scripts see proxies: empty tables whose metatable reads through to
-- the real table and refuses writes. `rawset` and `setmetatable` refuse
-- proxies too. The error handler skips this chunk's frames (source
-- `=ember`) so that errors point at the script's own line, as Redis's
-- handler points past C functions.
local raw, FAIL = ...
local G = _G
local type, error, tostring, select, unpack, next, loadstring =
    type, error, tostring, select, unpack, next, loadstring
local rawget, rawset, setmetatable, getmetatable =
    rawget, rawset, setmetatable, getmetatable
local lua_pcall, xpcall = pcall, xpcall
local dbg = debug
local HERE = '=ember'

-- Proxies scripts cannot change, weakly keyed.
local readonly = setmetatable({}, { __mode = 'k' })

local function deny()
    error('Attempt to modify a readonly table', 2)
end

local function protect(t)
    if readonly[t] then
        return t
    end
    for k, v in next, t do
        if type(v) == 'table' and v ~= G then
            rawset(t, k, protect(v))
        end
    end
    local proxy = {}
    setmetatable(proxy, { __index = t, __newindex = deny, __metatable = false })
    readonly[proxy] = true
    return proxy
end

-- Functions that may fail are called through Rust's trampoline (a C
-- function): they return FAIL and the error instead of raising it, and
-- the trampoline raises it, keeping the script's frame for the error's
-- position even when the script tail-calls them.
local wrap = raw.wrap

-- The redis table.
local R = {}
-- The arguments travel as one table: a script may pass thousands.
R.call = wrap(function(...)
    return raw.call(true, select('#', ...), { ... })
end)
R.pcall = wrap(function(...)
    return (raw.call(false, select('#', ...), { ... }))
end)

-- Redis's error table from "-CODE message" or "message".
local function error_table(text)
    local code, msg = 'ERR', text
    if text:sub(1, 1) == '-' then
        local space = text:find(' ', 1, true)
        if space then
            code, msg = text:sub(2, space - 1), text:sub(space + 1)
        else
            msg = text:sub(2)
        end
    end
    msg = msg:gsub('^[\r\n]+', ''):gsub('[\r\n]+$', '')
    return { err = code .. ' ' .. msg }
end

R.error_reply = function(...)
    local e = ...
    if select('#', ...) ~= 1 or type(e) ~= 'string' then
        return error_table('wrong number or type of arguments')
    end
    if e:sub(1, 1) ~= '-' then
        e = '-' .. e
    end
    return error_table(e)
end
R.status_reply = function(...)
    local s = ...
    if select('#', ...) ~= 1 or type(s) ~= 'string' then
        return error_table('wrong number or type of arguments')
    end
    return { ok = s }
end

R.sha1hex = wrap(function(...)
    if select('#', ...) ~= 1 then
        return FAIL, error_table('wrong number of arguments')
    end
    return raw.sha1hex((...))
end)

R.LOG_DEBUG, R.LOG_VERBOSE, R.LOG_NOTICE, R.LOG_WARNING = 0, 1, 2, 3
R.log = wrap(function(...)
    local n = select('#', ...)
    if n < 2 then
        return FAIL, error_table('redis.log() requires two arguments or more.')
    end
    local level = ...
    if type(level) ~= 'number' then
        return FAIL, error_table('First argument must be a number (log level).')
    end
    if level < 0 or level > 3 then
        return FAIL, error_table('Invalid debug level.')
    end
    local parts = {}
    for i = 2, n do
        local v = select(i, ...)
        if type(v) == 'string' or type(v) == 'number' then
            parts[#parts + 1] = tostring(v)
        end
    end
    raw.log(level, table.concat(parts, ' '))
end)

R.setresp = wrap(function(...)
    if select('#', ...) ~= 1 then
        return FAIL, error_table('redis.setresp() requires one argument.')
    end
    local v = tonumber((...))
    if v ~= 2 and v ~= 3 then
        return FAIL, error_table('RESP version must be 2 or 3.')
    end
    raw.setresp(v)
end)

R.REPL_NONE, R.REPL_AOF, R.REPL_SLAVE, R.REPL_REPLICA, R.REPL_ALL = 0, 1, 2, 2, 3
R.set_repl = wrap(function(...)
    if select('#', ...) ~= 1 then
        return FAIL, error_table('redis.set_repl() requires two arguments.')
    end
    local flags = tonumber((...)) or 0
    if flags ~= 0 and flags ~= 1 and flags ~= 2 and flags ~= 3 then
        return FAIL, error_table(
            'Invalid replication flags. Use REPL_AOF, REPL_REPLICA, REPL_ALL or REPL_NONE.')
    end
    raw.set_repl(flags)
end)
R.replicate_commands = function()
    return true
end
R.breakpoint = function()
    return false
end
R.debug = function() end
R.REDIS_VERSION = raw.version
R.REDIS_VERSION_NUM = raw.version_num

G.redis = R

-- The libraries Redis adds, over their raw Rust forms.
-- Functions with many results return them as a table and a count.
local function spread(f)
    return function(...)
        local r, n = f(...)
        if r == FAIL then
            return FAIL, n
        end
        return unpack(r, 1, n)
    end
end
local function library(spec)
    local lib = {}
    for name, f in next, spec.one do
        lib[name] = wrap(f)
    end
    for name, f in next, spec.many or {} do
        lib[name] = wrap(spread(f))
    end
    return lib
end
for _, name in next, { 'cjson', 'cmsgpack', 'struct', 'bit' } do
    if raw[name] then
        G[name] = library(raw[name])
    end
end
G.cjson.null = raw.cjson_null

-- Redis's Lua refuses binary chunks.
G.loadstring = function(s, ...)
    if type(s) == 'string' and s:byte(1) == 27 then
        return nil, 'binary chunks are not allowed'
    end
    return loadstring(s, ...)
end

-- What Redis 7.0.15 leaves out of the base library.
G.dofile, G.loadfile, G.print = nil, nil, nil
G.getfenv, G.setfenv, G.newproxy = nil, nil, nil

-- pcall hands back the text of a Redis error table, as Redis 7.0's does.
local function pcall_result(ok, ...)
    if ok then
        return ok, ...
    end
    local e = ...
    if type(e) == 'table' then
        local m = rawget(e, 'err')
        if type(m) == 'string' or type(m) == 'number' then
            e = m
        end
    end
    return false, e
end
G.pcall = function(...)
    return pcall_result(lua_pcall(...))
end

-- The globals scripts see. Reading a missing one is an error; writing any
-- is refused.
local function missing(_, k)
    error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
end

for k, v in next, G do
    if type(v) == 'table' and v ~= G and k ~= 'package' then
        rawset(G, k, protect(v))
    end
end

local P = {}
local view = protect({ __index = missing, __newindex = deny })
setmetatable(G, { __index = missing })
setmetatable(P, { __index = G, __newindex = deny, __metatable = view })
readonly[P] = true
rawset(G, '_G', P)

-- Strings' methods come from the protected string table.
local smeta = getmetatable('')
smeta.__index = G.string
smeta.__metatable = protect({ __index = G.string })

-- Redis's patched Lua raises these without a position.
G.rawset = function(t, k, v)
    if readonly[t] then
        error('Attempt to modify a readonly table', 0)
    end
    return rawset(t, k, v)
end
G.setmetatable = function(t, m)
    if readonly[t] then
        error('Attempt to modify a readonly table', 0)
    end
    return setmetatable(t, m)
end
G.debug = nil

-- The error handler: Redis's error table with where the script failed.
local function handler(err)
    local level = 2
    local i = dbg.getinfo(level, 'nSl')
    while i and (i.what == 'C' or i.source == HERE) do
        level = level + 1
        i = dbg.getinfo(level, 'nSl')
    end
    if type(err) ~= 'table' or readonly[err] then
        err = { err = 'ERR ' .. tostring(err) }
    end
    if i then
        err.source = i.source
        err.line = i.currentline
    end
    return err
end

raw.run = function(f)
    return xpcall(f, handler)
end

return P, G
