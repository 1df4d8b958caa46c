#include "launcher/cli/cli.hpp"

#include <cstring>
#include <iostream>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "proxy/control/protocol.hpp"

namespace tokfence::cli {

const Config& Context::config() {
  if (!config_) config_ = load_config_or_throw(home);
  return *config_;
}

void flush_running_daemon(Context& ctx) {
  if (!std::filesystem::exists(ctx.home.runtime_file())) return;
  (void)proxy::control_call(ctx.home, nlohmann::json{{"op", "flush_log"}}, 1000);
}

void Context::scrub_argument(std::string_view secret) {
  if (secret.empty()) return;
  for (int i = 1; i < argc; ++i)
    if (argv[i] && std::string_view(argv[i]) == secret) std::memset(argv[i], '*', secret.size());
}

int run(int argc, char** argv) {
  CLI::App app{
      "tokfence: keeps AI provider keys in a vault and meters every agent request through a local proxy.\n"
      "Example:\n  tokfence vault add openai -   # paste the key, then Ctrl-D\n  tokfence start -d\n"
      "  eval \"$(tokfence env)\"          # point SDKs at the proxy"};
  app.name("tokfence");
  app.require_subcommand(1);
  app.set_version_flag("--version", "tokfence " TOKFENCE_VERSION);
  Context ctx;
  ctx.argc = argc;
  ctx.argv = argv;

  register_vault_commands(app, ctx);
  register_daemon_commands(app, ctx);
  register_log_commands(app, ctx);
  register_control_commands(app, ctx);
  register_run_commands(app, ctx);
  register_launch_commands(app, ctx);
  register_watch_commands(app, ctx);
  register_widget_commands(app, ctx);
  register_egress_commands(app, ctx);
  register_dashboard_commands(app, ctx);
  register_session_commands(app, ctx);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const UserError& e) {
    std::cerr << "tokfence: error: " << e.what() << "\n";
    return e.exit_code();
  } catch (const std::exception& e) {
    std::cerr << "tokfence: error: " << e.what() << "\n";
    return 1;
  }
  return ctx.exit_code;
}

}  // namespace tokfence::cli
