-- wrk script: GET /api/v1/recipes/{id} with Zipf-distributed ids (bench/cache_read.py drives it).
--
-- Environment:
--   ZIPF_IDS_FILE    one recipe id (or a path starting with /) per line, most popular first (rank 1 = line 1);
--                    required
--   ZIPF_S           Zipf exponent s (default 1.0): P(rank k) is proportional to 1 / k^s
--   ZIPF_SEED        base seed (default 1); each wrk thread seeds with its own derivative of it
--   WRK_RESULT_FILE  optional: done() writes the summary and the latency quantiles on a fine grid there,
--                    so the results of several wrk instances can be merged
--   WRK_AUTHORIZATION optional: sent as the Authorization header of every request (signed-in reads)
--   WRK_ACCEPT_ENCODING optional: sent as the Accept-Encoding header of every request
--
-- The CDF and every request string are built once per thread in init(); request() is a binary search.

local thread_count = 0

function setup(thread)
    thread_count = thread_count + 1
    thread:set("thread_index", thread_count)
end

local requests = {}
local cdf = {}
local n = 0

function init(args)
    local path = os.getenv("ZIPF_IDS_FILE")
    if path == nil or path == "" then
        error("ZIPF_IDS_FILE is not set")
    end
    local s = tonumber(os.getenv("ZIPF_S") or "1.0")
    local base = tonumber(os.getenv("ZIPF_SEED") or "1")
    -- thread_index is a global set by setup(); distinct instances pass distinct ZIPF_SEEDs.
    math.randomseed(base * 7919 + (thread_index or 1))

    local authorization = os.getenv("WRK_AUTHORIZATION")
    if authorization ~= nil and authorization ~= "" then
        wrk.headers["Authorization"] = authorization
    end

    local accept_encoding = os.getenv("WRK_ACCEPT_ENCODING")
    if accept_encoding ~= nil and accept_encoding ~= "" then
        wrk.headers["Accept-Encoding"] = accept_encoding
    end

    local file = assert(io.open(path, "r"))
    for line in file:lines() do
        local id = line:match("^%s*(%S+)%s*$")
        if id then
            n = n + 1
            if id:sub(1, 1) == "/" then  -- a path of its own (bench/list_read.py's list pages)
                requests[n] = wrk.format("GET", id)
            else
                requests[n] = wrk.format("GET", "/api/v1/recipes/" .. id)
            end
        end
    end
    file:close()
    if n == 0 then
        error("no ids in " .. path)
    end

    local total = 0
    for k = 1, n do
        total = total + 1 / (k ^ s)
        cdf[k] = total
    end
    for k = 1, n do
        cdf[k] = cdf[k] / total
    end
    cdf[n] = 1.0
end

function request()
    local u = math.random()
    local lo, hi = 1, n
    while lo < hi do
        local mid = math.floor((lo + hi) / 2)
        if cdf[mid] < u then
            lo = mid + 1
        else
            hi = mid
        end
    end
    return requests[lo]
end

function done(summary, latency, requests_stats)
    local out_path = os.getenv("WRK_RESULT_FILE")
    if out_path == nil or out_path == "" then
        return
    end
    local out = assert(io.open(out_path, "w"))
    local e = summary.errors
    out:write(string.format(
        "summary requests=%d duration_us=%d bytes=%d connect=%d read=%d write=%d status=%d timeout=%d\n",
        summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout
    ))
    -- This wrk (4.1.0) cannot hand out its histogram, so write its quantile function on a fine grid:
    -- every 0.1% up to 99%, every 0.01% above. Several instances' grids merge into one distribution.
    for step = 1, 990 do
        local pct = step / 10
        out:write(string.format("%.2f %d\n", pct, latency:percentile(pct)))
    end
    for step = 9901, 10000 do
        local pct = step / 100
        out:write(string.format("%.2f %d\n", pct, latency:percentile(pct)))
    end
    out:close()
end
