"""A destination for the egress tests: HTTPS (a throwaway certificate) or plain HTTP on 127.0.0.1.

  egress_fake_server.py --port-file F --log F [--cert C --key K]

GET /hello       200 "hello from the fake <scheme> server"
GET /bytes?n=N   N bytes of 'x' (Content-Length), sent in 64 KiB pieces
GET /slow        1 KiB every 100 ms for at most 60 s (a long transfer the kill switch must cut)
anything else    404
Every request is one line in the log file ("METHOD PATH Host"), so a test can tell that a refused
connection never arrived. Bounded: the server exits after 10 minutes whatever happens.
"""
import argparse, http.server, os, socket, ssl, sys, threading, time

ap = argparse.ArgumentParser()
ap.add_argument("--port-file", required=True)
ap.add_argument("--log", required=True)
ap.add_argument("--cert")
ap.add_argument("--key")
args = ap.parse_args()
scheme = "https" if args.cert else "http"
log_lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def note(self):
        with log_lock, open(args.log, "a") as f:
            f.write(f"{self.command} {self.path} {self.headers.get('Host', '')}\n")

    def do_GET(self):
        self.note()
        if self.path == "/hello":
            body = f"hello from the fake {scheme} server\n".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
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
