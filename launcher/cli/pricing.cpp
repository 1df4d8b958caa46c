// `tokfence pricing update --from FILE` and `tokfence pricing list --unknown` (the `pricing` group
// itself and `pricing list` live in cli_log.cpp). Prices go stale and new models appear faster than
// releases: an update loads LiteLLM's price file into home/pricing-overrides.json, which the daemon
// reads at start and again on the `pricing_reload` control op.
#include <cstdio>
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/file.hpp"
#include "launcher/cli/cli.hpp"
#include "core/text_format.hpp"
#include "core/time.hpp"
#include "proxy/control/protocol.hpp"
#include "proxy/metering/pricing.hpp"
#include "proxy/metering/request_log.hpp"

namespace tokfence::cli {
namespace {

using nlohmann::json;

constexpr std::size_t kMaxPriceFileBytes = 64 << 20;  // LiteLLM's file is about 1.5 MB

std::string read_price_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError("pricing: cannot read " + path);
  std::string text;
  char buffer[65536];
  while (in.read(buffer, sizeof buffer) || in.gcount() > 0) {
    text.append(buffer, static_cast<std::size_t>(in.gcount()));
    if (text.size() > kMaxPriceFileBytes) throw UserError("pricing: " + path + ": larger than 64 MiB");
  }
  if (in.bad()) throw UserError("pricing: cannot read " + path);
  return text;
}

std::string price_text(const ModelPrice& p) {
  return "input " + usd_per_million(p.input) + ", output " + usd_per_million(p.output) + ", cache read " +
         usd_per_million(p.cache_read) + ", cache write " + usd_per_million(p.cache_write);
}

std::string model_label(const proxy::PricedModel& m) { return (m.provider.empty() ? std::string("*") : m.provider) + "/" + m.model; }

void update_prices(Context& ctx, const std::string& from) {
  const Config& config = ctx.config();
  auto parsed = proxy::parse_litellm_prices(read_price_file(from));
  if (!parsed) throw UserError(from + ": " + parsed.error().message + " (nothing changed)");
  // What tokfence charged before, for the report: the table as the daemon builds it.
  const proxy::PricingTable before(config);
  auto previous = value_or_throw(proxy::load_price_updates(config.pricing_update_file));

  std::vector<std::string> added, changed;
  std::size_t unchanged = 0;
  for (const auto& m : parsed->models) {
    auto old = before.find(m.provider, m.model);
    if (!old)
      added.push_back(model_label(m));
    else if (!proxy::same_token_prices(*old, m.price))
      changed.push_back(model_label(m) + ": " + price_text(*old) + " -> " + price_text(m.price));
    else
      ++unchanged;
  }
  std::size_t removed = 0;
  for (const auto& p : previous) {
    bool kept = false;
    for (const auto& m : parsed->models) kept = kept || (m.provider == p.provider && m.model == p.model);
    if (!kept) ++removed;
  }

  value_or_throw(ensure_private_dir(config.pricing_update_file.parent_path()));
  value_or_throw(file::write_atomic(config.pricing_update_file, proxy::serialize_price_updates(parsed->models),
                                    file::WriteOptions{0600, std::nullopt}));

  std::cout << "pricing: " << parsed->models.size() << " model price(s) from " << from << " written to "
            << config.pricing_update_file.string() << " (" << parsed->skipped
            << " entries skipped: not priced per token, or another cloud's)\n";
  std::cout << "added " << added.size() << ", changed " << changed.size() << ", unchanged " << unchanged
            << ", dropped from the previous update " << removed << "\n";
  for (const auto& line : changed) std::cout << "changed: " << printable(line) << "\n";
  constexpr std::size_t kShownAdded = 50;
  for (std::size_t i = 0; i < added.size() && i < kShownAdded; ++i) std::cout << "added: " << printable(added[i]) << "\n";
  if (added.size() > kShownAdded) std::cout << "added: ... and " << added.size() - kShownAdded << " more\n";
  if (!config.pricing_overrides.empty())
    std::cout << "note: [pricing.\"<model>\"] in config.toml still wins over these for the models it names\n";

  if (!proxy::running_daemon(ctx.home)) return;
  auto reply = proxy::control_call(ctx.home, {{"op", "pricing_reload"}});
  if (reply) {
    std::cout << "the running daemon uses the new prices from its next request\n";
  } else {
    std::cerr << "tokfence: warning: the running daemon did not reload its prices: " << reply.error().message
              << ": restart it with 'tokfence stop' and 'tokfence start -d'\n";
    ctx.exit_code = 1;
  }
}

}  // namespace

void register_pricing_update(CLI::App& pricing, Context& ctx) {
  auto from = std::make_shared<std::string>();
  auto* update = pricing.add_subcommand(
      "update",
      "Load model prices from LiteLLM's model_prices_and_context_window.json (input_cost_per_token,\n"
      "output_cost_per_token, cache_read_input_token_cost, cache_creation_input_token_cost, litellm_provider,\n"
      "mode) into $TOKFENCE_HOME/pricing-overrides.json; a running daemon uses them at once. They replace the\n"
      "built-in prices of the same models; [pricing.\"<model>\"] in config.toml still wins. A bad file changes\n"
      "nothing.\n"
      "Example:\n  tokfence pricing update --from model_prices_and_context_window.json");
  update->add_option("--from", *from, "LiteLLM-format JSON file")->required();
  update->callback([from, &ctx] { update_prices(ctx, *from); });
}

void print_unknown_models(Context& ctx, const std::string& provider, bool as_json) {
  const Config& config = ctx.config();
  const proxy::PricingTable table(config);
  flush_running_daemon(ctx);
  auto seen = value_or_throw(proxy::models_seen(config.logging.db_path));
  json out = json::array();
  Table t({{"PROVIDER", 0}, {"MODEL", 0}, {"REQUESTS", 0}, {"LAST SEEN (UTC)", 0}});
  std::size_t count = 0;
  for (const auto& m : seen) {
    if (!provider.empty() && m.provider != provider) continue;
    if (table.find(m.provider, m.model)) continue;
    ++count;
    out.push_back(json{{"provider", m.provider}, {"model", m.model}, {"requests", m.requests}, {"last_ts_ms", m.last_ts_ms}});
    t.add({m.provider, m.model, std::to_string(m.requests), utc_rfc3339(m.last_ts_ms)});
  }
  if (as_json) {
    std::cout << out.dump(2, ' ', false, json::error_handler_t::replace) << "\n";
    return;
  }
  if (count == 0) {
    std::cout << "every model in the request log has a price\n";
    return;
  }
  std::cout << "models in the request log without a price" << (config.pricing_fallback ? " (charged the [pricing] fallback while a budget applies)" : " (refused while a budget applies)") << ":\n";
  t.print(std::cout, true);
  std::cout << "add them with [pricing.\"<model>\"] in config.toml or 'tokfence pricing update --from FILE'\n";
}

}  // namespace tokfence::cli
