#pragma once
// Telling a web page's request from the user's own, for the loopback HTTP listeners that serve a
// browser UI (the web dashboard, launch's dashboard relay tokfence-relay --check-host).
//
// Host alone stops DNS rebinding only: a page on any site can make the browser send a request, or
// open a WebSocket (no same-origin read barrier), to http://127.0.0.1:<port>/, and that request
// names the right Host by construction. What a page cannot forge are the fields the browser adds:
// Origin (on every WebSocket handshake and every cross-origin POST) and Sec-Fetch-Site (on
// every request of current Chromium, Firefox and Safari). curl and the user's typed or xdg-open
// URL send no Origin and Sec-Fetch-Site none or none at all.
//
// libc and the standard library only: tokfence-relay (static, no tokfence_core) compiles this in.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace tokfence {

// Whether `origin` (an Origin field value) is the listener's own: http://127.0.0.1:<port> or
// http://localhost:<port>, ASCII case-insensitive, nothing else ("null", a trailing '/', https,
// another port or host are not).
bool is_own_loopback_origin(std::string_view origin, std::uint16_t port);

// Why a request whose Origin field values are `origins` and Sec-Fetch-Site values `fetch_sites`
// was sent by a page of another origin than the loopback listener on `port`; "" when nothing says
// so. Refused: any Origin but the own one (is_own_loopback_origin), more than one Origin or
// Sec-Fetch-Site field (a browser sends one; two could be read differently by the server behind),
// and a Sec-Fetch-Site other than same-origin or none (cross-site, and same-site, which is
// any other port of 127.0.0.1 too). Allowed: no such fields (curl), Sec-Fetch-Site none (a typed
// URL), same-origin with the own Origin.
std::string foreign_page_refusal(std::span<const std::string_view> origins,
                                 std::span<const std::string_view> fetch_sites, std::uint16_t port);

}  // namespace tokfence
