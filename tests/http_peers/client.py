#!/usr/bin/env python3
"""http.client and urllib scenarios against the cio server.

usage: client.py PORT SCENARIO; prints what the test checks."""
import http.client
import sys
import urllib.request

port = int(sys.argv[1])
what = sys.argv[2]

if what == "keepalive":
    # One connection, several requests: the peer port must not change.
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    ports = []
    for _ in range(3):
        c.request("GET", "/peer")
        r = c.getresponse()
        ports.append(r.read().decode())
    print("same" if len(set(ports)) == 1 else "different", ports[0])
elif what == "chunked":
    # A chunked upload, echoed back as a chunked response.
    def gen():
        for i in range(5):
            yield (b"part%d-" % i) * 1000
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("POST", "/echo", body=gen(), encode_chunked=True,
              headers={"Transfer-Encoding": "chunked"})
    r = c.getresponse()
    body = r.read()
    want = b"".join(gen())
    print(r.status, r.getheader("Transfer-Encoding"), body == want, len(body))
elif what == "urllib":
    with urllib.request.urlopen("http://127.0.0.1:%d/users/42" % port) as r:
        print(r.status, r.read().decode())
elif what == "stream":
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/stream")
    r = c.getresponse()
    print(r.status, r.read().decode())
elif what == "head":
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("HEAD", "/")
    r = c.getresponse()
    print(r.status, r.getheader("Content-Length"), repr(r.read()))
    c.request("GET", "/")
    r = c.getresponse()
    print(r.status, r.read().decode())
else:
    sys.exit("unknown scenario " + what)
