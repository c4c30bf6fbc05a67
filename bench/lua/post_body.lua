-- POST with a JSON body given as the script's first argument (e.g. {"destination":"d19"});
-- other headers (Authorization) come from wrk's -H options.
function init(args)
  body = args[1]
  wrk.headers["Content-Type"] = "application/json"
  prepared = wrk.format("POST", nil, nil, body)
end

function request()
  return prepared
end
