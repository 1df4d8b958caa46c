"""A destination for the egress tests: HTTPS (a throwaway certificate) or plain HTTP on 127.0.0.1.

  egress_fake_server.py --port-file F --log F [--cert C --key K]

GET /hello       200 "hello from the fake <scheme> server"
GET /bytes?n=N   N bytes of 'x' (Content-Length), sent in 64 KiB pieces
GET /slow        1 KiB every 100 ms for at most 60 s (a long transfer the kill switch must cut)
GET /echo        200, the request head as received (a host that quotes requests back)
A hostile bound host, for the reflection tests (any method; the request body is read first):
  /echo-chunked    body + head echoed in 4096-byte chunks (a secret may straddle two chunks)
  /echo-big        body + head + 300 KiB of filler, one Content-Length (over any whole-read limit)
  /store, /fetch   /store keeps the request head (204); /fetch returns it (without any secret asked)
  /blob?n=N        N bytes of 'b' (at most 16 MB), one Content-Length
  /echo-ce         Content-Encoding: identity, then Content-Encoding: gzip; body = gzip(head)
  /echo-b64        the head in base64; /echo-url the head percent-encoded
  /raw             reads what follows the head for 1 s into <log>.rest (a smuggled second request)
GET /redirect?to=URL  302 to URL
anything else    404
Every request is one line in the log file ("METHOD PATH Host"), so a test can tell that a refused
connection never arrived, and its whole head goes to <log>.heads (what a bound host received). Bounded: the server exits after 10 minutes whatever happens.
"""
import argparse, base64, gzip, http.server, os, socket, ssl, sys, threading, time, urllib.parse

ap = argparse.ArgumentParser()
ap.add_argument("--port-file", required=True)
ap.add_argument("--log", required=True)
ap.add_argument("--cert")
ap.add_argument("--key")
args = ap.parse_args()
scheme = "https" if args.cert else "http"
log_lock = threading.Lock()
stored = [b""]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def note(self):
        with log_lock, open(args.log, "a") as f:
            f.write(f"{self.command} {self.path} {self.headers.get('Host', '')}\n")
        with log_lock, open(args.log + ".heads", "a") as f:
            f.write(self.requestline + "\n" + str(self.headers) + "----\n")

    def hostile(self):
        """The hostile bound host's endpoints; False when the path is none of them."""
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        head = (self.requestline + "\r\n" + str(self.headers)).encode("latin-1")
        p = self.path
        if p.startswith("/echo-chunked"):
            data = body + head
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(data), 4096):
                c = data[i:i + 4096]
                self.wfile.write(b"%x\r\n" % len(c) + c + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")
            return True
        if p.startswith("/store"):
            stored[0] = head
            self.send_response(204)
            self.end_headers()
            return True
        out = None
        if p.startswith("/echo-big"):
            out = body + head + b"F" * (300 * 1024)
        elif p.startswith("/fetch"):
            out = stored[0]
        elif p.startswith("/blob?n="):
            out = b"b" * min(int(p.split("=", 1)[1]), 16 * 1000 * 1000)
        elif p.startswith("/echo-b64"):
            out = base64.b64encode(body + head)
        elif p.startswith("/echo-url"):
            out = urllib.parse.quote(head).encode()
        elif p.startswith("/echo-ce"):
            out = gzip.compress(head)
            self.send_response(200)
            self.send_header("Content-Encoding", "identity")
            self.send_header("Content-Encoding", "gzip")
        elif p.startswith("/raw"):
            self.connection.settimeout(1.0)
            rest = b""
            try:
                for _ in range(100):
                    c = self.connection.recv(65536)
                    if not c:
                        break
                    rest += c
            except OSError:
                pass
            with log_lock, open(args.log + ".rest", "ab") as f:
                f.write(rest + b"\n----\n")
            out = b"ok"
        if out is None:
            return False
        if not p.startswith("/echo-ce"):
            self.send_response(200)
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
        return True

    def do_POST(self):
        self.note()
        if not self.hostile():
            self.send_error(404)

    def do_GET(self):
        self.note()
        if self.hostile():
            return
        if self.path == "/hello":
            body = f"hello from the fake {scheme} server\n".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path.startswith("/echo"):
            body = (self.requestline + "\n" + str(self.headers)).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path.startswith("/redirect?to="):
            self.send_response(302)
            self.send_header("Location", self.path.split("=", 1)[1])
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path.startswith("/bytes?n="):
            n = int(self.path.split("=", 1)[1])
            self.send_response(200)
            self.send_header("Content-Length", str(n))
            self.end_headers()
            piece = b"x" * 65536
            while n > 0:
                k = min(n, len(piece))
                self.wfile.write(piece[:k])
                n -= k
        elif self.path == "/slow":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            try:
                for _ in range(600):
                    self.wfile.write(b"y" * 1024)
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass
            self.close_connection = True
        else:
            self.send_error(404)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def get_request(self):
        conn, addr = super().get_request()
        if args.cert:
            # The handshake happens on the handler's thread (first read), never in the accept loop.
            conn = ctx.wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
        return conn, addr


if args.cert:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(args.cert, args.key)
srv = Server(("127.0.0.1", 0), Handler)
with open(args.port_file + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(args.port_file + ".tmp", args.port_file)
threading.Timer(600, lambda: os._exit(0)).start()
srv.serve_forever()
