#pragma once
// The agent session that `tokfence run` and `tokfence launch` ask the daemon for when they open
// their proxy socket (ImmuneFence, issue 19; control op open_proxy_socket, field "session"): the
// capability token the agent sends as its API key, and the decoy credentials to plant where an
// attacker inside the fence looks (core/decoys.hpp). Both callers fail closed: a reply without a
// usable session stops them before anything starts, because an agent with the old placeholder key
// would be refused on every request, and one without decoys would be watched by no canary.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/decoys.hpp"
#include "core/error.hpp"
#include "core/providers.hpp"

namespace tokfence::launcher {

struct AgentSession {
  std::string session_id;
  std::string name;
  // Secret, like a key: into the agent's environment and rendered config only; never into argv,
  // a message, a log line or a file the host keeps after the run.
  std::string token;
  std::int64_t expires_at_ms = 0;  // unix ms
  Decoys decoys;
};

// open_proxy_socket's "session" field: {"name": `name`, "kind": `kind` ("run"|"launch"), "decoys":
// true, "limits": ...}. The limits scope the fenced agent's token to what it was started for: the
// `providers` it was given (their names) and the requests an agent makes to them
// (agent_endpoints: generating, counting, listing models), so a hostile agent cannot use the
// user's key for another provider or for the account's files, batches or fine-tuning.
nlohmann::json session_request(const std::string& name, std::string_view kind, const std::vector<ProviderSpec>& providers);

// The reply's "session", checked: session_id and name non-empty strings, token "tfc1." + at least
// 16 more of [A-Za-z0-9._-] (at most 4096 in all: it goes unescaped into configs), expires_at_ms a
// number, decoys valid per decoys_from_json. Errors say what is missing or wrong and never quote
// the token.
Result<AgentSession> session_from_reply(const nlohmann::json& reply);

// True if `token` has the shape session_from_reply accepts.
bool plausible_token(std::string_view token);

}  // namespace tokfence::launcher
