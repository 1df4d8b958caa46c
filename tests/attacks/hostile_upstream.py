#!/usr/bin/env python3
"""A hostile provider for tests/attacks/immune_upstream_key_echo.sh: it answers every request with
the key tokfence injected, disguised so that a scan of the raw bytes does not see it whole, while
the client's HTTP and JSON libraries put it back together. Mode = the path's last segment:
  plain    the key verbatim in a JSON body (the case that was always caught)
  header   the key in a response header
  chunked  the key in the JSON text, the chunked framing splitting it into 8-byte chunks
  uescape  the key written as \\u00XX JSON escapes
  sse      the key spelled across SSE events, 8 characters each
  gzip     the plain echo gzip-compressed, Content-Encoding: gzip (tokfence asked for identity)
  reason   the key as the status line's reason phrase ("HTTP/1.1 200 <key>")
  hname    the key in a response header's NAME ("X-<key>: 1")
  chunkext the key in a chunk extension ("<size>;k=<key>")
  trailer  the key in a trailer field after the last chunk
Loopback only; one thread per connection; stops after 10 minutes.
Usage: hostile_upstream.py PORT_FILE
"""
import gzip, os, socket, sys, threading

USAGE = '"usage":{"prompt_tokens":10,"completion_tokens":10,"total_tokens":20}'


def read_request(c):
    data = b""
    while b"\r\n\r\n" not in data:
        d = c.recv(65536)
        if not d:
            return None, {}
        data += d
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    n = int(headers.get("content-length", "0"))
    while len(rest) < n:
        d = c.recv(65536)
        if not d:
            break
        rest += d
    return lines[0], headers


def answer(mode, key):
    json_head = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
    if mode == "header":
        body = ('{"model":"tf-test","choices":[],%s}' % USAGE).encode()
        return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Debug-Auth: Bearer " + key.encode() +
                b"\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
    if mode == "gzip":
        body = gzip.compress(('{"model":"tf-test","echo":"%s",%s}' % (key, USAGE)).encode())
        return json_head + b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    if mode in ("reason", "hname"):
        body = ('{"model":"tf-test","choices":[],%s}' % USAGE).encode()
        status = b"HTTP/1.1 200 " + (key.encode() if mode == "reason" else b"OK") + b"\r\n"
        name = b"X-" + key.encode() + b": 1\r\n" if mode == "hname" else b""
        return (status + b"Content-Type: application/json\r\n" + name +
                b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body)
    if mode in ("chunkext", "trailer"):
        body = ('{"model":"tf-test","choices":[],%s}' % USAGE).encode()
        ext = b";k=" + key.encode() if mode == "chunkext" else b""
        trailer = b"X-Trailer: " + key.encode() + b"\r\n" if mode == "trailer" else b""
        return (json_head + b"Transfer-Encoding: chunked\r\n\r\n" + b"%x" % len(body) + ext + b"\r\n" + body +
                b"\r\n0\r\n" + trailer + b"\r\n")
    if mode in ("plain", "chunked", "uescape"):
        echo = "".join("\\u%04x" % ord(ch) for ch in key) if mode == "uescape" else key
        body = ('{"model":"tf-test","echo":"%s",%s}' % (echo, USAGE)).encode()
        if mode != "chunked":
            return json_head + b"Content-Length: %d\r\n\r\n" % len(body) + body
        out = json_head + b"Transfer-Encoding: chunked\r\n\r\n"
        for i in range(0, len(body), 8):
            out += b"%x\r\n" % len(body[i:i + 8]) + body[i:i + 8] + b"\r\n"
        return out + b"0\r\n\r\n"
    if mode == "sse":
        events = b""
        for i in range(0, len(key), 8):
            events += b'data: {"model":"tf-test","choices":[{"delta":{"content":"' + key[i:i + 8].encode() + b'"}}]}\n\n'
        events += b'data: {"model":"tf-test","choices":[],' + USAGE.encode() + b'}\n\ndata: [DONE]\n\n'
        return (b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\nConnection: close\r\n\r\n"
                % len(events) + events)
    body = b'{"error":"unknown mode"}'
    return b"HTTP/1.1 404 Not Found\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body) + body


def serve(c):
    try:
        line, headers = read_request(c)
        if line is None:
            return
        mode = line.split(" ")[1].split("?")[0].rstrip("/").split("/")[-1]
        auth = headers.get("authorization", "")
        key = auth[7:] if auth.lower().startswith("bearer ") else headers.get("x-api-key", "")
        c.sendall(answer(mode, key))
    except OSError:
        pass
    finally:
        c.close()


s = socket.socket()
s.bind(("127.0.0.1", 0))
s.listen(64)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(s.getsockname()[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
threading.Timer(600, lambda: os._exit(0)).start()
while True:
    conn, _ = s.accept()
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
