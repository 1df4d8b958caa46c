#pragma once
// Telling a web page's request from the user's own, for the loopback HTTP listeners that serve a
// browser UI (the web dashboard, launch's dashboard relay tokfence-relay --check-host).
//
// Host alone stops DNS rebinding only: a page on any site can make the browser send a request, or
// open a WebSocket (no same-origin read barrier), to http://127.0.0.1:<port>/, and that request
// names the right Host by construction. What a page cannot forge are the fields the browser adds:
// Origin (on every WebSocket handshake and every cross-origin POST) and Sec-Fetch-Site (on
// every fetch of current Chromium, Firefox and Safari, though not on Chromium's WebSocket
// handshakes). curl and the user's typed or xdg-open
// URL send no Origin and Sec-Fetch-Site none or none at all.
//
// libc and the standard library only: tokfence-relay (static, no tokfence_core) compiles this in.
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace tokfence {

// Whether `origin` (an Origin field value) is the listener's own, as the request named the
// listener: "http://" and `host`, the request's Host field value, ASCII case-insensitive, when
// `host` is 127.0.0.1:<port> or localhost:<port> (its caller checked the port). Nothing else
// ("null", a trailing '/', https, another port or host). The two names are two origins: a browser
// tries localhost at ::1 first, where another local user can listen on the same port, so a page of
// http://localhost:<port> may be that user's and speaks for the listener only on a request to
// localhost:<port> (review 14a F1: such a page opened ws://127.0.0.1:<port>/ to the launch UI).
bool is_own_loopback_origin(std::string_view origin, std::string_view host);

// Why a request for `host` (its Host field value, checked by the caller to be 127.0.0.1:<port> or
// localhost:<port>) whose Origin field values are `origins` and Sec-Fetch-Site values
// `fetch_sites` was sent by a page of another origin than the listener; "" when nothing says so.
// Refused: any Origin but the own one (is_own_loopback_origin), more than one Origin or
// Sec-Fetch-Site field (a browser sends one; two could be read differently by the server behind),
// and a Sec-Fetch-Site other than same-origin or none (cross-site, and same-site, which is any
// other port of 127.0.0.1 too). Allowed: no such fields (curl), Sec-Fetch-Site none (a typed URL),
// same-origin with the own Origin. Chromium sends no Sec-Fetch-Site on a WebSocket handshake: there
// Origin alone decides.
std::string foreign_page_refusal(std::span<const std::string_view> origins,
                                 std::span<const std::string_view> fetch_sites, std::string_view host);

// Whether a request head (final CRLF CRLF optional) is a browser's fetch of a service worker
// script (a `Service-Worker: script` field): tokfence-relay --page-policy answers it itself
// (core/page_policy.hpp).
bool requests_service_worker(std::string_view head);

}  // namespace tokfence
