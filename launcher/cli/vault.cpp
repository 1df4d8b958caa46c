// `tokfence vault ...`: add, remove, list, rotate, export, import.
// Keys enter through stdin (`-`, no echo on a terminal) or, with a warning, argv; they leave only
// through the vault backends and encrypted export bundles. Nothing here prints a key: `list` shows
// SecretString::fingerprint(). `--host` binds a secret to hosts (vault.hpp): hosts are not secret
// and are printed freely.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/names.hpp"
#include "launcher/cli/cli.hpp"
#include "core/text_format.hpp"
#include "core/time.hpp"
#include "proxy/control/protocol.hpp"
#include "vault/terminal.hpp"
#include "vault/vault.hpp"

namespace tokfence::cli {

namespace {

using vault::Overwrite;

constexpr std::size_t kMaxKeyBytes = 16 * 1024;
constexpr std::size_t kMaxBundleBytes = 32 * 1024 * 1024;

void check_name(const std::string& provider) { value_or_throw(check_provider_name(provider)); }

std::unique_ptr<vault::Vault> open_configured_vault(Context& ctx) {
  return value_or_throw(vault::open_vault(ctx.config(), ctx.home, vault::default_passphrase_source()));
}

// The key from argv, or from stdin for "-". Whitespace around it is dropped (a pasted key brings
// its newline along); what remains must be a well-formed key.
SecretString read_key(const std::string& provider, std::string& argv_key, const std::string& command) {
  SecretString key;
  if (argv_key == "-") {
    Result<SecretString> raw = isatty(STDIN_FILENO)
                                   ? vault::read_hidden_line(STDIN_FILENO, STDERR_FILENO,
                                                             "tokfence: key for " + provider + " (input hidden): ",
                                                             kMaxKeyBytes)
                                   : vault::read_secret_stream(STDIN_FILENO, kMaxKeyBytes);
    if (!raw) throw UserError("key for '" + provider + "': " + raw.error().message);
    key = vault::trim_secret(*raw);
  } else {
    std::cerr << "tokfence: warning: a key given on the command line lands in your shell history and is visible to "
                 "other processes while tokfence starts: prefer 'tokfence vault "
              << command << " " << provider << " -' and paste it\n";
    key = vault::trim_secret(SecretString(argv_key));
    wipe(argv_key);
  }
  if (auto ok = vault::check_key(key.reveal()); !ok)
    throw UserError("key for '" + provider + "': " + ok.error().message.substr(std::strlen("key: ")) +
                    ": nothing was changed");
  return key;
}

// A running daemon holds the keys in memory: tell it to read them again. No daemon, nothing to do.
void reload_daemon_keys(const Home& home) {
  if (!proxy::running_daemon(home)) return;
  auto reply = proxy::control_call(home, {{"op", "reload_keys"}});
  if (reply)
    std::cerr << "tokfence: the running daemon reloaded its keys\n";
  else
    std::cerr << "tokfence: warning: the running daemon did not reload its keys: " << reply.error().message
              << ": restart it with 'tokfence stop' and 'tokfence start -d'\n";
}

std::string utc_time(std::int64_t t) {
  if (t == 0) return "-";
  return format_utc(t * 1000, "%Y-%m-%d %H:%MZ");
}

std::string read_bundle_file(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw UserError("export bundle: cannot read: " + path + ": " + std::strerror(errno));
  std::string bytes;
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      std::string message = std::string("export bundle: cannot read: ") + path + ": " + std::strerror(errno);
      ::close(fd);
      throw UserError(message);
    }
    if (n == 0) break;
    bytes.append(buf, static_cast<std::size_t>(n));
    if (bytes.size() > kMaxBundleBytes) {
      ::close(fd);
      throw UserError("export bundle: larger than 32 MiB, not a tokfence bundle: " + path);
    }
  }
  ::close(fd);
  return bytes;
}

struct Args {
  std::string provider;
  std::string key;
  std::vector<std::string> hosts;  // --host, in the order given
  std::string in;                  // --in: "" (= header), "header" or "path"
  std::string output;
  std::string file;
  bool json = false;
  bool force = false;
};

std::string host_list(const std::vector<std::string>& hosts) {
  std::string out;
  for (const auto& h : hosts) out += (out.empty() ? "" : ", ") + h;
  return out;
}

// The --host values, repeats dropped, checked before anything is read or written.
std::vector<std::string> checked_hosts(const std::vector<std::string>& given) {
  std::vector<std::string> hosts;
  for (const auto& h : given)
    if (std::find(hosts.begin(), hosts.end(), h) == hosts.end()) hosts.push_back(h);
  if (auto ok = vault::check_secret_hosts(hosts); !ok) {
    std::string message = ok.error().message;  // "host 'X': ..." or "hosts: ..."
    if (message.starts_with("host ")) message = "--host " + message.substr(5);
    else if (message.starts_with("hosts: ")) message = "--host: " + message.substr(7);
    throw UserError(message + ": nothing was changed");
  }
  return hosts;
}

void cmd_add(Context& ctx, Args& a, Overwrite mode) {
  const std::string command = mode == Overwrite::no ? "add" : "rotate";
  // First thing: while the vault is opened (Argon2id takes a second) the key would otherwise sit
  // in /proc/<pid>/cmdline for any process of the user to read.
  if (a.key != "-") ctx.scrub_argument(a.key);
  check_name(a.provider);
  const std::vector<std::string> hosts = checked_hosts(a.hosts);
  // The position goes with the hosts (a rotation without --host keeps both as stored).
  if (!a.in.empty() && hosts.empty()) throw UserError("--in goes with --host: nothing was changed");
  const bool in_path = a.in == "path";
  SecretString key = read_key(a.provider, a.key, command);
  auto v = open_configured_vault(ctx);
  value_or_throw(v->put(a.provider, key, mode, hosts, in_path));
  std::vector<std::string> bound = hosts;
  bool bound_in_path = in_path;
  if (bound.empty() && mode != Overwrite::no) {
    // A rotation without --host keeps the stored hosts: say which.
    for (const auto& info : value_or_throw(v->list()))
      if (info.provider == a.provider) {
        bound = info.hosts;
        bound_in_path = info.in_path;
      }
  }
  std::cout << (mode == Overwrite::no ? "added" : "rotated") << " the " << (bound.empty() ? "key" : "secret") << " of "
            << a.provider << " (" << key.fingerprint() << ", " << v->backend_name() << " backend)";
  if (!bound.empty())
    std::cout << ": sent only to " << host_list(bound) << ", in place of tokfence-secret:" << a.provider
              << (bound_in_path ? " (in the URL path too)" : "");
  std::cout << "\n";
  reload_daemon_keys(ctx.home);
}

void cmd_remove(Context& ctx, Args& a) {
  check_name(a.provider);
  auto v = open_configured_vault(ctx);
  value_or_throw(v->remove(a.provider));
  std::cout << "removed the key of " << a.provider << " (" << v->backend_name() << " backend)\n";
  reload_daemon_keys(ctx.home);
}

void cmd_list(Context& ctx, Args& a) {
  auto v = open_configured_vault(ctx);
  auto infos = value_or_throw(v->list());
  if (a.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& i : infos)
      out.push_back({{"provider", i.provider},
                     {"backend", i.backend},
                     {"added_at", i.added_at},
                     {"added", utc_rfc3339(i.added_at * 1000)},
                     {"rotated_at", i.rotated_at ? nlohmann::json(i.rotated_at) : nlohmann::json(nullptr)},
                     {"rotated", i.rotated_at ? nlohmann::json(utc_rfc3339(i.rotated_at * 1000)) : nlohmann::json(nullptr)},
                     {"fingerprint", i.fingerprint},
                     {"hosts", i.hosts},
                     {"in", i.hosts.empty() ? nlohmann::json(nullptr) : nlohmann::json(i.in_path ? "path" : "header")}});
    std::cout << out.dump(2) << "\n";
    return;
  }
  if (infos.empty()) {
    std::cout << "no keys in the vault (" << v->backend_name()
              << " backend): add one with 'tokfence vault add <provider> -'\n";
    return;
  }
  std::cout << pad("PROVIDER", 18) << pad("BACKEND", 16) << pad("ADDED", 19) << pad("ROTATED", 19) << pad("KEY", 10)
            << "HOSTS\n";
  for (const auto& i : infos)
    std::cout << pad(i.provider, 18) << pad(i.backend, 16) << pad(utc_time(i.added_at), 19)
              << pad(utc_time(i.rotated_at), 19) << pad(i.fingerprint, 10)
              << (i.hosts.empty() ? "-" : host_list(i.hosts) + (i.in_path ? " (in path)" : ""))
              << "\n";
}

void cmd_export(Context& ctx, Args& a) {
  if (a.output.empty() && isatty(STDOUT_FILENO))
    throw UserError("vault export: refusing to write a binary bundle to a terminal: use --output FILE or redirect stdout");
  auto v = open_configured_vault(ctx);
  auto records = value_or_throw(v->records());
  if (records.empty()) throw UserError("vault export: the vault is empty: nothing to export");
  SecretString passphrase = value_or_throw(vault::default_passphrase_source()("export bundle", true));
  std::string bundle = value_or_throw(vault::seal_bundle(records, passphrase));
  std::string names;
  for (const auto& r : records) names += (names.empty() ? "" : ", ") + r.provider;
  if (a.output.empty()) {
    std::cout.write(bundle.data(), static_cast<std::streamsize>(bundle.size()));
    std::cout.flush();
    if (!std::cout) throw UserError("vault export: cannot write to stdout");
    std::cerr << "tokfence: exported " << records.size() << " key(s): " << names << "\n";
  } else {
    if (auto ok = vault::write_file_atomic(a.output, bundle, 0600); !ok)
      throw UserError("vault export: " + ok.error().message);
    std::cout << "exported " << records.size() << " key(s) to " << a.output << ": " << names << "\n";
  }
}

void cmd_import(Context& ctx, Args& a) {
  std::string bytes = read_bundle_file(a.file);
  value_or_throw(vault::check_bundle_header(bytes, a.file));
  SecretString passphrase = value_or_throw(vault::default_passphrase_source()("export bundle", false));
  auto records = value_or_throw(vault::open_bundle(bytes, passphrase, a.file));
  auto v = open_configured_vault(ctx);
  auto reports = value_or_throw(v->merge(records, a.force ? Overwrite::yes : Overwrite::no));
  bool changed = false;
  for (const auto& r : reports) {
    switch (r.outcome) {
      case vault::MergeOutcome::added:
        std::cout << r.provider << ": added\n";
        changed = true;
        break;
      case vault::MergeOutcome::replaced:
        std::cout << r.provider << ": replaced\n";
        changed = true;
        break;
      case vault::MergeOutcome::skipped:
        std::cout << r.provider << ": skipped (already in the vault; --force replaces it)\n";
        break;
    }
  }
  if (changed) reload_daemon_keys(ctx.home);
}

}  // namespace

void register_vault_commands(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<Args>();
  CLI::App* vault_cmd =
      app.add_subcommand("vault", "Store, list, rotate, export and import provider keys and secrets bound to hosts");
  vault_cmd->require_subcommand(1);
  vault_cmd->footer(
      "The backend is [vault] backend in config.toml: \"auto\" (the Secret Service when one runs, else the file),\n"
      "\"file\" (vault.enc, passphrase from TOKFENCE_VAULT_PASSPHRASE or a prompt) or \"secret-service\".\n"
      "Example:\n  tokfence vault add openai -      # paste the key, then Enter (or pipe it in)\n"
      "  tokfence vault add telegram-bot - --host api.telegram.org --in path   # a secret bound to a host\n  tokfence vault list");

  CLI::App* add = vault_cmd->add_subcommand(
      "add", "Add a provider's key, or with --host a secret bound to hosts (refuses to replace one: see rotate)");
  add->add_option("provider", args->provider, "Provider (or secret) name, [a-z0-9][a-z0-9_-]{0,31}")->required();
  add->add_option("key", args->key, "The key, or - to read it from stdin (no echo on a terminal)")->required();
  add->add_option("--host", args->hosts,
                  "Bind the secret to this host: the proxy sends it only there, over inspected TLS, in place of\n"
                  "tokfence-secret:NAME (lower-case DNS name; *.example.com for subdomains; repeatable)")
      ->expected(1)
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  add->add_option("--in", args->in,
                  "Where the proxy may write the secret: header (default: the value of a credential field such as\n"
                  "Authorization) or path (the URL path as well, for a host that reads its token there, as Telegram's\n"
                  "/bot<token>/ does; needs --host)")
      ->check(CLI::IsMember({"header", "path"}));
  add->footer(
      "A key on the command line works but lands in your shell history: prefer -.\n"
      "With --host the entry is not a provider key: the agent gets the placeholder tokfence-secret:NAME and\n"
      "the proxy substitutes the secret only on TLS connections to the hosts given.\n"
      "Example:\n  tokfence vault add openai -\n  pass show openai | tokfence vault add openai -\n"
      "  tokfence vault add github - --host api.github.com\n"
      "  tokfence vault add telegram-bot - --host api.telegram.org --in path");
  add->callback([&ctx, args] { cmd_add(ctx, *args, Overwrite::no); });

  CLI::App* rotate = vault_cmd->add_subcommand("rotate", "Replace a provider's key (or a bound secret) with a new one");
  rotate->add_option("provider", args->provider, "Provider (or secret) name")->required();
  rotate->add_option("key", args->key, "The new key, or - to read it from stdin (no echo on a terminal)")->required();
  rotate->add_option("--host", args->hosts,
                     "Bind the secret to these hosts instead of the stored ones (repeatable; default: keep them)")
      ->expected(1)
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  rotate->add_option("--in", args->in, "With --host: header (default) or path, as for add (default: keep the stored one)")
      ->check(CLI::IsMember({"header", "path"}));
  rotate->footer(
      "Example:\n  tokfence vault rotate anthropic -\n"
      "  tokfence vault rotate telegram-bot -                        # keeps its hosts\n"
      "  tokfence vault rotate telegram-bot - --host api.telegram.org --in path");
  rotate->callback([&ctx, args] { cmd_add(ctx, *args, Overwrite::existing_only); });

  CLI::App* remove = vault_cmd->add_subcommand("remove", "Delete a provider's key");
  remove->add_option("provider", args->provider, "Provider name")->required();
  remove->footer("Example:\n  tokfence vault remove mistral");
  remove->callback([&ctx, args] { cmd_remove(ctx, *args); });

  CLI::App* list = vault_cmd->add_subcommand(
      "list", "List stored keys: provider, backend, dates, fingerprint (never the key), hosts of a bound secret");
  list->add_flag("--json", args->json, "Print JSON instead of a table");
  list->footer("Example:\n  tokfence vault list\n  tokfence vault list --json | jq -r '.[].provider'");
  list->callback([&ctx, args] { cmd_list(ctx, *args); });

  CLI::App* exp = vault_cmd->add_subcommand(
      "export", "Write all keys to an encrypted bundle (its own passphrase: TOKFENCE_EXPORT_PASSPHRASE or a prompt)");
  exp->add_option("-o,--output", args->output, "Bundle file to write (mode 0600); default: stdout");
  exp->footer("Example:\n  tokfence vault export --output keys.tfbundle");
  exp->callback([&ctx, args] { cmd_export(ctx, *args); });

  CLI::App* imp = vault_cmd->add_subcommand(
      "import", "Merge an export bundle into the vault, reporting each provider added, replaced or skipped");
  imp->add_option("file", args->file, "Bundle written by 'tokfence vault export'")->required()->check(CLI::ExistingFile);
  imp->add_flag("--force", args->force, "Replace keys already in the vault (default: skip them)");
  imp->footer("Example:\n  tokfence vault import keys.tfbundle\n  tokfence vault import keys.tfbundle --force");
  imp->callback([&ctx, args] { cmd_import(ctx, *args); });
}

}  // namespace tokfence::cli
