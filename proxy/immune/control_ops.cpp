// The session control operations (docs/CONTROL-PROTOCOL.md, "Sessions"): what `tokfence session`
// and `tokfence env --session` ask the daemon. Tokens appear in exactly two replies (session_new
// and session_token, plus session_reset for a manual session): the CLI prints them to its user;
// nothing here logs one.
#include "proxy/immune/control_ops.hpp"

#include "core/money.hpp"
#include "core/time.hpp"

namespace tokfence::immune {

namespace {

using json = nlohmann::json;

Result<std::string> name_of(const json& r, const char* op) {
  if (!r.contains("name") || !r["name"].is_string() || r["name"].get<std::string>().empty())
    return fail(std::string(op) + ": 'name' (string) is required");
  return r["name"].get<std::string>();
}

json issued_json(const Issued& issued) {
  json out = {{"name", issued.session->name}, {"session_id", issued.session->id},
              {"expires_at", utc_rfc3339(issued.token_expires_ms ? issued.token_expires_ms : issued.session->expires_ms)}};
  if (!issued.token.empty()) out["token"] = issued.token;
  return out;
}

}  // namespace

Result<SessionRequest> session_request_from(const json& r) {
  SessionRequest req;
  if (!r.is_object()) return fail("session: the request must be an object");
  if (r.contains("name") && !r["name"].is_string()) return fail("session: 'name' must be a string");
  req.name = r.value("name", std::string());
  if (r.contains("kind") && !r["kind"].is_string()) return fail("session: 'kind' must be a string");
  req.kind = r.value("kind", std::string("manual"));
  if (r.contains("client_id") && !r["client_id"].is_string()) return fail("session: 'client_id' must be a string");
  req.client_id = r.value("client_id", std::string());
  if (r.contains("ttl_seconds")) {
    if (!r["ttl_seconds"].is_number_integer() || r["ttl_seconds"].get<std::int64_t>() < 60 ||
        r["ttl_seconds"].get<std::int64_t>() > 366LL * 86400)
      return fail("session: ttl_seconds must be an integer from 60 to 31622400 (366 days)");
    req.ttl_ms = r["ttl_seconds"].get<std::int64_t>() * 1000;
  }
  if (r.contains("decoys") && !r["decoys"].is_boolean()) return fail("session: 'decoys' must be true or false");
  req.decoys = r.value("decoys", false);
  auto limits = limits_from_json(r.contains("limits") ? r["limits"] : json());
  if (!limits) return std::unexpected(limits.error());
  req.limits = std::move(*limits);
  return req;
}

void register_session_ops(proxy::ControlRouter& router, std::shared_ptr<Registry> registry) {
  router.add("session_new", [registry](const json& r) -> Result<json> {
    auto req = session_request_from(r);
    if (!req) return std::unexpected(req.error());
    if (req->kind != "manual") return fail("session_new: sessions of launch and run are opened with their socket");
    if (req->name.empty()) return fail("session_new: 'name' (string) is required");
    auto issued = registry->create(std::move(*req), now_ms());
    if (!issued) return std::unexpected(issued.error());
    return issued_json(*issued);
  });
  router.add("session_token", [registry](const json& r) -> Result<json> {
    auto name = name_of(r, "session_token");
    if (!name) return std::unexpected(name.error());
    auto issued = registry->issue(*name, now_ms());
    if (!issued) return std::unexpected(issued.error());
    return issued_json(*issued);
  });
  router.add("session_list", [registry](const json& r) -> Result<json> {
    const std::int64_t now = now_ms();
    json live = json::array();
    for (const auto& s : registry->live()) live.push_back(registry->describe(*s, false, now));
    json out = {{"sessions", std::move(live)}};
    if (r.value("all", false)) {
      auto history = registry->history(200);
      if (!history) return std::unexpected(history.error());
      out["history"] = std::move(*history);
    }
    return out;
  });
  router.add("session_show", [registry](const json& r) -> Result<json> {
    auto name = name_of(r, "session_show");
    if (!name) return std::unexpected(name.error());
    auto s = registry->find(*name);
    if (!s) return fail("session: no live session '" + *name + "' (tokfence session list)");
    return registry->describe(*s, true, now_ms());
  });
  router.add("session_revoke", [registry](const json& r) -> Result<json> {
    auto name = name_of(r, "session_revoke");
    if (!name) return std::unexpected(name.error());
    auto s = registry->revoke(*name, "revoked by the user", now_ms());
    if (!s) return std::unexpected(s.error());
    return json{{"name", (*s)->name}, {"session_id", (*s)->id}, {"revoked", true}};
  });
  router.add("session_reset", [registry](const json& r) -> Result<json> {
    auto name = name_of(r, "session_reset");
    if (!name) return std::unexpected(name.error());
    auto issued = registry->reset(*name, now_ms());
    if (!issued) return std::unexpected(issued.error());
    json out = issued_json(*issued);
    out["risk_state"] = to_string(issued->session->state());
    return out;
  });
}

}  // namespace tokfence::immune
