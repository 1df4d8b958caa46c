#pragma once
// The environment that points HTTP clients inside a fence (a `tokfence run` sandbox, a `tokfence
// launch` container) at tokfence's forward proxy. The relay inside the fence serves the daemon's
// per-fence listener on loopback; that one listener answers both model requests and, as a forward
// proxy (CONNECT, absolute-form), everything else, which the daemon's egress policy allows or
// refuses with a 403 naming the rule (docs/EGRESS.md).
//
// Set always, also with no --allow rule: a client that honours the variables then gets tokfence's
// clear 403 ("not allowed: run 'tokfence egress allow ...'") instead of an opaque connect failure.
// The values are tokfence's own: whatever the user's shell had is never inherited (the sandbox's
// allow-list drops HTTP_PROXY and friends, a container starts from its image's environment).
#include <map>
#include <string>
#include <string_view>

namespace tokfence {

// HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and their lower-case twins = `proxy_url` (e.g.
// "http://127.0.0.1:9471"); NO_PROXY and no_proxy = "127.0.0.1,localhost,::1", so requests to the
// model proxy itself (and to servers the agent runs on its own loopback) go direct.
std::map<std::string, std::string> egress_proxy_env(std::string_view proxy_url);

// The loopback names in NO_PROXY.
inline constexpr std::string_view kEgressNoProxy = "127.0.0.1,localhost,::1";

}  // namespace tokfence
