#pragma once
// What a relayed page may reach (tokfence-relay --page-policy, launch's dashboard relay).
//
// The OpenClaw control UI that launch relays is the container's page: its script is the agent's
// once the agent rewrote it, and it runs in the user's browser, which has the network the
// container lacks. So the relay never passes the container's answer head on as text: it reads it
// the way a browser delimits it, parses it strictly (anything a browser could read differently
// from us is refused, and the connection closed), and writes a head of its own with only
// allow-listed fields, relayed_page_policy()'s Content-Security-Policy (loads, connections, forms
// and workers only to the listener's own origin, plus data: and blob:; no framing by other pages;
// no plugins), X-DNS-Prefetch-Control: off and Connection: close. Inline and eval'd script stay
// allowed: the policy limits where bytes go; the page's own policy (kept when it reports nowhere,
// and the browser enforces both) what runs. A service worker would outlive the launch and answer
// for the origin with headers of its own choosing: its script is answered by the relay with one
// that unregisters itself (service_worker_answer), which also replaces a worker another program
// registered for the origin at the browser's next update check.
//
// libc and the standard library only: tokfence-relay (static, no tokfence_core) compiles this in.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tokfence {

std::string relayed_page_policy(std::uint16_t port);

// How long the answer head at the start of `bytes` is, as a browser delimits it: up to and
// including the first empty line, whether its line ends are CRLF or LF ("\n\n", "\n\r\n"); npos
// while no empty line has come.
std::size_t answer_head_length(std::string_view bytes);

struct AnswerRewrite {
  enum Kind { final_head, interim, refused } kind = refused;
  std::string head;  // final_head: the head to send instead
  std::string why;   // refused: for the relay's log
};

// Reads `head` (answer_head_length bytes) strictly: CRLF line ends only, no other CR or LF, no
// NUL or other control byte but tab; a status line `HTTP/1.0|1.1 SP 3DIGIT [SP reason]` with a
// code of 100..599; field lines `token ":" value` (no white space before the colon, no folded
// line); at most one Content-Length (digits) and no Transfer-Encoding beside it, and
// Transfer-Encoding only `chunked`. 100 and 103 are interim (dropped: 103's Link fields could make
// the browser preload from anywhere); any other 1xx is refused (a browser skips it, we would not).
// A final head is rebuilt from the allow-listed fields (the framing and cache fields, Content-*,
// Location, the security fields; not Set-Cookie: cookies are per host, not per port; a Content-Security-Policy only when it names no
// report-uri or report-to) plus `policy`, X-DNS-Prefetch-Control: off and Connection: close.
AnswerRewrite rewrite_answer_head(std::string_view head, std::string_view policy);

// The relay's own answer to a service worker script fetch: 200, text/javascript, no-store, the
// page policy, and a worker that takes over at once and unregisters itself.
std::string service_worker_answer(std::string_view policy);

}  // namespace tokfence
