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
local lower = string.lower
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
-- raw.call and raw.pcall are C functions that take the arguments as they
-- are, raise a failure themselves (call) and hand unusual arguments to
-- their Rust side as one table: a script may pass thousands.
R.call = raw.call
R.pcall = raw.pcall

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

-- Functions: the `redis` a library sees while FUNCTION LOAD runs it. It
-- has register_function, log and the versions; reading anything else
-- from it is an error, as in Redis.
local function strict(t)
    local proxy = {}
    setmetatable(proxy, {
        __index = function(_, k)
            local v = t[k]
            if v == nil then
                error("Script attempted to access nonexistent global variable '"
                    .. tostring(k) .. "'", 2)
            end
            return v
        end,
        __newindex = deny,
        __metatable = false,
    })
    readonly[proxy] = true
    return proxy
end

local FLAG_BITS = {
    ['no-writes'] = 1, ['allow-oom'] = 2, ['allow-stale'] = 4,
    ['no-cluster'] = 8, ['allow-cross-slot-keys'] = 16,
}

local function read_flags(list)
    local bits = 0
    local i = 1
    while true do
        local f = list[i]
        if f == nil then
            return bits
        end
        if type(f) ~= 'string' and type(f) ~= 'number' then
            return nil
        end
        local bit = FLAG_BITS[lower(tostring(f))]
        if not bit then
            return nil
        end
        if bits % (bit * 2) < bit then
            bits = bits + bit
        end
        i = i + 1
    end
end

local function is_text(v)
    return type(v) == 'string' or type(v) == 'number'
end

-- redis.register_function(name, callback) or
-- redis.register_function{function_name=, callback=, description=, flags=}.
local function registration(...)
    local n = select('#', ...)
    if n < 1 or n > 2 then
        return 'wrong number of arguments to redis.register_function'
    end
    local a, b = ...
    if n == 2 then
        if not is_text(a) then
            return 'first argument to redis.register_function must be a string'
        end
        if type(b) ~= 'function' then
            return 'second argument to redis.register_function must be a function'
        end
        return nil, tostring(a), b, nil, 0
    end
    if type(a) ~= 'table' then
        return 'calling redis.register_function with a single argument is only applicable '
            .. 'to Lua table (representing named arguments).'
    end
    local name, callback, desc, flags = nil, nil, nil, 0
    for k, v in next, a do
        if not is_text(k) then
            return 'named argument key given to redis.register_function is not a string'
        end
        local key = lower(tostring(k))
        if key == 'function_name' then
            if not is_text(v) then
                return 'function_name argument given to redis.register_function must be a string'
            end
            name = tostring(v)
        elseif key == 'description' then
            if not is_text(v) then
                return 'description argument given to redis.register_function must be a string'
            end
            desc = tostring(v)
        elseif key == 'callback' then
            if type(v) ~= 'function' then
                return 'callback argument given to redis.register_function must be a function'
            end
            callback = v
        elseif key == 'flags' then
            if type(v) ~= 'table' then
                return 'flags argument to redis.register_function must be a table representing '
                    .. 'function flags'
            end
            flags = read_flags(v)
            if not flags then
                return 'unknown flag given'
            end
        else
            return 'unknown argument given to redis.register_function'
        end
    end
    if not name then
        return 'redis.register_function must get a function name argument'
    end
    if not callback then
        return 'redis.register_function must get a callback argument'
    end
    return nil, name, callback, desc, flags
end

local LR = {}
LR.register_function = wrap(function(...)
    local register = raw.register
    if not register then
        return FAIL, error_table('redis.register_function can only be called on FUNCTION LOAD command')
    end
    local err, name, callback, desc, flags = registration(...)
    if err then
        return FAIL, error_table(err)
    end
    err = register(name, callback, desc, flags)
    if err then
        return FAIL, error_table(err)
    end
end)
LR.log = R.log
LR.LOG_DEBUG, LR.LOG_VERBOSE, LR.LOG_NOTICE, LR.LOG_WARNING =
    R.LOG_DEBUG, R.LOG_VERBOSE, R.LOG_NOTICE, R.LOG_WARNING
LR.REDIS_VERSION = raw.version
LR.REDIS_VERSION_NUM = raw.version_num
local LOAD_REDIS = strict(LR)
-- The globals while a library loads: `redis` alone.
local LOAD_G = setmetatable({}, {
    __index = function(_, k)
        if k == 'redis' then
            return LOAD_REDIS
        end
        error("Script attempted to access nonexistent global variable '" .. tostring(k) .. "'", 2)
    end,
})

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
local pmeta = { __index = G, __newindex = deny, __metatable = view }
setmetatable(P, pmeta)
-- FUNCTION LOAD runs a library's code with the load-time globals.
raw.load_mode = function(on)
    pmeta.__index = on and LOAD_G or G
end
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

-- A function (FCALL) gets its keys and arguments as arguments; Lua
-- 5.1's xpcall passes none, so a closure of this chunk does.
raw.run = function(f, ...)
    if select('#', ...) == 0 then
        return xpcall(f, handler)
    end
    local keys, argv = ...
    return xpcall(function()
        return f(keys, argv)
    end, handler)
end

return P, G
