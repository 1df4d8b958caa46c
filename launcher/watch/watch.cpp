// One check of `tokfence watch` for one provider: windows, remote vs local, alerts, auto-revoke.
#include "launcher/watch/watch.hpp"
#include "core/time.hpp"

#include <ctime>

namespace tokfence::watch {

namespace {

constexpr std::int64_t kMinute = 60'000;
constexpr std::int64_t kHour = 3'600'000;
constexpr std::int64_t kDay = 86'400'000;

std::int64_t floor_to(std::int64_t v, std::int64_t step) { return v - ((v % step) + step) % step; }
std::int64_t ceil_to(std::int64_t v, std::int64_t step) { return floor_to(v + step - 1, step); }

std::string iso_utc(std::int64_t ms) { return format_utc(ms, "%Y-%m-%d %H:%M UTC"); }

json window_json(const Window& w) { return {{"start_ms", w.start_ms}, {"end_ms", w.end_ms}}; }

json amounts_json(const Amounts& a) {
  json j;
  j["requests"] = a.requests ? json(*a.requests) : json(nullptr);
  j["tokens"] = a.tokens ? json(*a.tokens) : json(nullptr);
  j["cost_usd"] = a.cost ? json(static_cast<double>(*a.cost) / 1e12) : json(nullptr);
  j["cost_pico"] = a.cost ? json(*a.cost) : json(nullptr);
  return j;
}

json finding_json(const Finding& f) {
  json j{{"metric", f.metric}};
  if (f.metric == "usd") {
    j["remote"] = static_cast<double>(f.remote) / 1e12;
    j["local"] = static_cast<double>(f.local) / 1e12;
    j["excess"] = static_cast<double>(f.remote - f.local) / 1e12;
    j["threshold"] = static_cast<double>(f.threshold) / 1e12;
  } else {
    j["remote"] = f.remote;
    j["local"] = f.local;
    j["excess"] = f.remote - f.local;
    j["threshold"] = f.threshold;
  }
  return j;
}

std::string admin_key_name(const std::string& provider) { return provider + "-admin"; }

std::string auth_advice(const std::string& provider, const std::string& key_used, const FetchError& e) {
  std::string admin = admin_key_name(provider);
  if (key_used == admin)
    return provider + ": the usage api refused the key '" + admin + "' (http " + std::to_string(e.status) +
           "): it lacks the admin/usage-read scope; replace it with an admin key: tokfence vault rotate " + admin +
           " -  (" + e.message + ")";
  return provider + ": the usage api refused the key '" + key_used + "' (http " + std::to_string(e.status) +
         "): it lacks the admin scope the usage api needs; add an admin key: tokfence vault add " + admin + " -  (" +
         e.message + ")";
}

}  // namespace

Window usage_window_at(std::int64_t now_ms, std::int64_t period_s, std::int64_t settle_s) {
  std::int64_t step = period_s <= 86'400 ? kMinute : kHour;
  Window w;
  w.end_ms = floor_to(now_ms - settle_s * 1000, step);
  w.start_ms = w.end_ms - ceil_to(period_s * 1000, step);
  return w;
}

Window cost_window_at(std::int64_t now_ms, std::int64_t period_s, std::int64_t settle_s) {
  // Cost APIs only have UTC day buckets: whole days from the period's first day to the end of today.
  Window u = usage_window_at(now_ms, period_s, settle_s);
  return Window{floor_to(u.start_ms, kDay), ceil_to(now_ms + 1, kDay)};
}

std::string format_amount(const std::string& metric, std::int64_t value) {
  if (metric != "usd") return std::to_string(value) + (metric == "requests" ? " requests" : " tokens");
  // Six decimals: exact to the micro-dollar, which is the precision of every price.
  bool neg = value < 0;
  std::int64_t v = neg ? -value : value;
  std::int64_t micro = (v + 500'000) / 1'000'000;
  std::string frac = std::to_string(micro % 1'000'000);
  frac.insert(0, 6 - frac.size(), '0');
  while (frac.size() > 2 && frac.back() == '0') frac.pop_back();
  return std::string(neg ? "-$" : "$") + std::to_string(micro / 1'000'000) + "." + frac;
}

std::string describe(const std::string& provider, const std::string& kind, const Finding& f, const Window& w) {
  std::string span = iso_utc(w.start_ms) + " .. " + iso_utc(w.end_ms);
  if (kind == "idle")
    return provider + ": the provider reports " + format_amount(f.metric == "requests" ? "requests" : "tokens", f.remote) +
           " during " + span + " while tokfence proxied nothing for this provider: someone else may be using the key";
  return provider + ": the provider reports " + format_amount(f.metric, f.remote) + " for " + span + ", tokfence's log " +
         format_amount(f.metric, f.local) + ": " + format_amount(f.metric, f.remote - f.local) +
         " unaccounted for (threshold " + format_amount(f.metric, f.threshold) + "); the key may have leaked";
}

std::vector<Finding> compare(const Amounts& remote, const Amounts& local, const Thresholds& t, bool skip_cost) {
  std::vector<Finding> out;
  auto check = [&](const char* metric, const std::optional<std::int64_t>& r, const std::optional<std::int64_t>& l,
                   std::int64_t threshold) {
    if (!r || !l) return;  // one side cannot tell: nothing to compare
    if (*r - *l > threshold) out.push_back(Finding{metric, *r, *l, threshold});
  };
  if (!skip_cost) check("usd", remote.cost, local.cost, t.usd);
  check("tokens", remote.tokens, local.tokens, t.tokens);
  check("requests", remote.requests, local.requests, t.requests);
  return out;
}

json ProviderCheck::to_json() const {
  json j{{"provider", provider},
         {"status", status},
         {"endpoint", endpoint},
         {"key", key_used},
         {"usage_window", window_json(usage_window)},
         {"cost_window", window_json(cost_window)},
         {"remote", amounts_json(remote)},
         {"local", amounts_json(local)},
         {"new_alerts", alerts.size()},
         {"revoked", revoked}};
  j["local"]["unknown_cost_requests"] = local_unknown_cost_requests;
  j["findings"] = json::array();
  for (const auto& f : findings) j["findings"].push_back(finding_json(f));
  if (idle) {
    json i = finding_json(*idle);
    i["window"] = window_json(*idle_window);
    j["idle"] = i;
  } else {
    j["idle"] = nullptr;
  }
  j["error"] = error.empty() ? json(nullptr) : json(error);
  if (!revoke_error.empty()) j["revoke_error"] = revoke_error;
  return j;
}

ProviderCheck check_provider(const std::string& provider, const Options& options, Environment& env) {
  ProviderCheck c;
  c.provider = provider;
  std::int64_t now = env.now_ms();
  c.usage_window = usage_window_at(now, options.period_s, options.settle_s);
  c.cost_window = cost_window_at(now, options.period_s, options.settle_s);
  auto error = [&](std::string message, std::string status = "error") {
    c.status = std::move(status);
    c.error = std::move(message);
    return c;
  };

  auto spec = env.config->provider(provider);
  if (!spec) return error(provider + ": unknown provider: see 'tokfence provider list'");
  std::optional<Endpoint> endpoint;
  if (auto it = options.endpoints.find(provider); it != options.endpoints.end()) endpoint = it->second;
  else endpoint = builtin_endpoint(provider);
  if (!endpoint)
    return error(provider + ": no usage api is built in for this provider: pass --usage-endpoint " + provider +
                     "=URL serving the simple shape (docs/WATCH.md)",
                 "skipped");
  c.endpoint = redact_url(endpoint->format == Format::simple ? endpoint->url : endpoint->url + "/...");

  // Organization usage APIs need an admin key; it is looked up first, the proxy key second.
  std::optional<SecretString> key;
  for (const std::string& name : {admin_key_name(provider), provider}) {
    auto k = env.key(name);
    if (!k) return error(provider + ": vault: " + k.error().message);
    if (*k) {
      key = std::move(**k);
      c.key_used = name;
      break;
    }
  }
  if (!key)
    return error(provider + ": no key in the vault to read usage with: run 'tokfence vault add " + admin_key_name(provider) +
                 " -'");

  auto remote = fetch_remote(*endpoint, *spec, *key, c.usage_window, c.cost_window, Costs::yes, env.http_get);
  if (!remote) {
    if (remote.error().kind == FetchError::Kind::auth) return error(auth_advice(provider, c.key_used, remote.error()));
    return error(provider + ": " + remote.error().message);
  }
  c.remote = remote->amounts;
  c.cost_window = remote->cost_window;

  auto local = local_usage(env.db, provider, c.usage_window);
  if (!local) return error(provider + ": request log: " + local.error().message);
  c.local.requests = local->amounts.requests;
  c.local.tokens = local->amounts.tokens;
  auto local_cost = local_usage(env.db, provider, c.cost_window);
  if (!local_cost) return error(provider + ": request log: " + local_cost.error().message);
  c.local.cost = local_cost->amounts.cost;
  c.local_unknown_cost_requests = local_cost->unknown_cost_requests;
  // With unpriced requests the local cost is only a lower bound: comparing it would cry wolf.
  c.findings = compare(c.remote, c.local, options.thresholds, c.local_unknown_cost_requests > 0);

  if (options.idle_check) {
    auto last = last_local_activity_ms(env.db, provider);
    if (!last) return error(provider + ": request log: " + last.error().message);
    std::int64_t idle_start = ceil_to(now - options.idle_window_s * 1000, kMinute);
    // A request's usage is booked when it ends; one minute of slack covers the bucket edge.
    bool idle = !*last || **last + kMinute <= idle_start;
    Window stretch{idle_start, floor_to(now - options.settle_s * 1000, kMinute)};
    if (idle && stretch.end_ms > stretch.start_ms) {
      c.idle_window = stretch;
      auto moved = fetch_remote(*endpoint, *spec, *key, stretch, stretch, Costs::no, env.http_get);
      if (!moved) {
        if (moved.error().kind == FetchError::Kind::auth) return error(auth_advice(provider, c.key_used, moved.error()));
        return error(provider + ": " + moved.error().message);
      }
      const Amounts& m = moved->amounts;
      if (m.tokens.value_or(0) > 0) c.idle = Finding{"tokens", *m.tokens, 0, 0};
      else if (m.requests.value_or(0) > 0) c.idle = Finding{"requests", *m.requests, 0, 0};
    }
  }

  c.status = c.findings.empty() && !c.idle ? "ok" : "alert";
  if (c.status == "ok") return c;

  // Continuous mode sees the same gap every interval: raise it again only when it grew.
  std::vector<Alert> alerts;
  auto consider = [&](const std::string& kind, const Finding& f, const Window& w) {
    std::string key_name = provider + "/" + kind + "/" + f.metric;
    std::int64_t excess = f.remote - f.local;
    std::int64_t span_ms = (kind == "idle" ? options.idle_window_s : options.period_s) * 1000;
    auto it = env.raised.find(key_name);
    if (it != env.raised.end() && excess <= it->second.excess + f.threshold && now - it->second.at_ms < span_ms) return;
    env.raised[key_name] = Environment::Raised{excess, now};
    Alert a;
    a.ts_ms = now;
    a.provider = provider;
    a.kind = kind;
    a.metric = kind == "idle" ? "idle-" + f.metric : f.metric;
    a.remote = f.remote;
    a.local = f.local;
    a.threshold = f.threshold;
    a.window_start_ms = w.start_ms;
    a.window_end_ms = w.end_ms;
    a.message = describe(provider, kind, f, w);
    alerts.push_back(std::move(a));
  };
  for (const Finding& f : c.findings) consider("gap", f, f.metric == "usd" ? c.cost_window : c.usage_window);
  if (c.idle) consider("idle", *c.idle, *c.idle_window);
  if (alerts.empty()) return c;

  if (options.auto_revoke && env.revoke) {
    auto how = env.revoke(provider);
    if (how) {
      c.revoked = true;
      for (Alert& a : alerts) {
        a.revoked = true;
        a.message += "; tokfence revoked '" + provider + "' (" + *how + ")";
      }
    } else {
      c.revoke_error = how.error().message;
    }
  }
  if (auto stored = store_alerts(env.db, alerts); !stored)
    c.error = provider + ": alert not stored: " + stored.error().message;
  if (env.notify)
    for (const Alert& a : alerts) env.notify("tokfence: possible key leak (" + provider + ")", a.message);
  c.alerts = std::move(alerts);
  return c;
}

}  // namespace tokfence::watch
