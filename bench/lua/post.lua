-- POST with an empty body (Content-Length: 0); other headers come from wrk's -H options.
wrk.method = "POST"
wrk.body = ""
