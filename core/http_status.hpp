#pragma once
// HTTP status codes as text: the one reason-phrase table for every HTTP answer tokfence writes
// (the proxy's data plane, proxy/http, and the dashboard listener, proxy/dashboard).
#include <string_view>

namespace tokfence {

// The standard reason phrase of `status` (RFC 9110 wording), or "" when tokfence does not know
// the code: a caller that must send a phrase picks its own fallback.
std::string_view reason_phrase(int status);

}  // namespace tokfence
