#include "launcher/openclaw/session.hpp"

#include <algorithm>

namespace tokfence::launcher {

nlohmann::json session_request(const std::string& name, std::string_view kind, const std::vector<ProviderSpec>& providers) {
  nlohmann::json names = nlohmann::json::array(), endpoints = nlohmann::json::array();
  for (const auto& spec : providers) {
    names.push_back(spec.name);
    for (auto& e : agent_endpoints(spec))
      if (std::find(endpoints.begin(), endpoints.end(), e) == endpoints.end()) endpoints.push_back(std::move(e));
  }
  return {{"name", name},
          {"kind", std::string(kind)},
          {"decoys", true},
          {"limits", {{"providers", std::move(names)}, {"endpoints", std::move(endpoints)}}}};
}

bool plausible_token(std::string_view token) {
  if (token.size() < 21 || token.size() > 4096 || token.substr(0, 5) != "tfc1.") return false;
  return std::all_of(token.begin(), token.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-' || c == '_';
  });
}

Result<AgentSession> session_from_reply(const nlohmann::json& reply) {
  const std::string p = "session: ";
  if (!reply.is_object() || !reply.contains("session"))
    return fail(p + "the daemon's reply has none (a daemon older than this tokfence? restart it with 'tokfence stop' "
                    "and 'tokfence start -d')");
  const auto& s = reply["session"];
  if (!s.is_object()) return fail(p + "not a JSON object");
  AgentSession out;
  for (const char* key : {"session_id", "name"}) {
    if (!s.contains(key) || !s[key].is_string() || s[key].get_ref<const std::string&>().empty())
      return fail(p + key + ": missing or not a non-empty string");
  }
  out.session_id = s["session_id"].get<std::string>();
  out.name = s["name"].get<std::string>();
  if (!s.contains("token") || !s["token"].is_string()) return fail(p + "token: missing or not a string");
  if (!plausible_token(s["token"].get_ref<const std::string&>()))
    return fail(p + "token: not a tfc1 capability token (value not shown)");
  out.token = s["token"].get<std::string>();
  if (!s.contains("expires_at_ms") || !s["expires_at_ms"].is_number()) return fail(p + "expires_at_ms: missing or not a number");
  out.expires_at_ms = s["expires_at_ms"].get<std::int64_t>();
  if (!s.contains("decoys")) return fail(p + "decoys: missing (they were asked for)");
  auto decoys = decoys_from_json(s["decoys"]);
  if (!decoys) return fail(p + decoys.error().message);
  out.decoys = std::move(*decoys);
  return out;
}

}  // namespace tokfence::launcher
