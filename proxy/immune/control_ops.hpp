#pragma once
// The control protocol's session operations: session_new, session_token, session_list,
// session_show, session_revoke, session_reset (docs/CONTROL-PROTOCOL.md).
#include <memory>

#include "proxy/control/protocol.hpp"
#include "proxy/immune/sessions.hpp"

namespace tokfence::immune {

// A session's request as the control protocol writes it:
// {"name", "kind", "client_id", "ttl_seconds", "decoys", "limits": {providers, models, endpoints,
// rpm, budget_daily_pico}}; strict, errors name the field.
Result<SessionRequest> session_request_from(const nlohmann::json& request);

void register_session_ops(proxy::ControlRouter& router, std::shared_ptr<Registry> registry);

}  // namespace tokfence::immune
