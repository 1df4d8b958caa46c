#include "vault/vault.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>

#include "core/file.hpp"
#include "core/names.hpp"
#include "vault/payload.hpp"
#include "vault/sealed_file.hpp"
#include "vault/terminal.hpp"

namespace tokfence::vault {

namespace {

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

}  // namespace

static_assert(kMaxSecretHosts == payload::kMaxHosts);

Result<void> check_secret_hosts(const std::vector<std::string>& hosts) { return payload::check_hosts(hosts); }

Result<void> check_bound_secret(const std::vector<KeyInfo>& entries, std::string_view name) {
  auto entry = std::find_if(entries.begin(), entries.end(), [&](const KeyInfo& k) { return k.provider == name; });
  if (entry == entries.end())
    return fail("no secret '" + std::string(name) + "' in the vault: add it with 'tokfence vault add " +
                std::string(name) + " - --host HOST'");
  if (entry->hosts.empty())
    return fail("'" + std::string(name) + "' is a provider key, not a secret bound to hosts: it is never sent as a secret");
  return {};
}

std::string join_hosts(const std::vector<std::string>& hosts) {
  std::string out;
  for (const auto& h : hosts) out += (out.empty() ? "" : ",") + h;
  return out;
}

Result<std::vector<std::string>> split_hosts(std::string_view joined) {
  std::vector<std::string> out;
  if (joined.empty()) return out;
  // Bounded: at most kMaxSecretHosts + 1 pieces are taken before check_secret_hosts refuses.
  for (std::size_t start = 0; out.size() <= kMaxSecretHosts;) {
    std::size_t comma = joined.find(',', start);
    out.emplace_back(joined.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  if (auto ok = check_secret_hosts(out); !ok) return std::unexpected(ok.error());
  return out;
}

PassphraseSource default_passphrase_source() {
  return [](const std::string& purpose, bool confirm) -> Result<SecretString> {
    const std::string var = purpose == "export bundle" ? "TOKFENCE_EXPORT_PASSPHRASE" : "TOKFENCE_VAULT_PASSPHRASE";
    if (const char* value = std::getenv(var.c_str())) {
      if (!*value) return fail(purpose + " passphrase: " + var + " is empty: set it to the passphrase or unset it to be asked");
      return SecretString(value);
    }
    Fd tty(::open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC));
    if (tty.get() < 0) return fail(purpose + " passphrase: none given and no terminal to ask on: set " + var);
    auto first = read_hidden_line(tty.get(), tty.get(), "tokfence: passphrase for the " + purpose + ": ");
    if (!first) return fail(purpose + " passphrase: " + first.error().message);
    if (first->empty()) return fail(purpose + " passphrase: is empty: nothing was changed");
    if (confirm) {
      auto second = read_hidden_line(tty.get(), tty.get(), "tokfence: the same passphrase again: ");
      if (!second) return fail(purpose + " passphrase: " + second.error().message);
      if (!(*first == *second)) return fail(purpose + " passphrase: the two entries differ: nothing was changed");
    }
    return std::move(*first);
  };
}

Result<std::unique_ptr<Vault>> open_vault(const Config& config, const Home& home, PassphraseSource passphrase) {
  switch (config.vault.backend) {
    case VaultBackendChoice::file:
      return open_file_vault(home, std::move(passphrase));
    case VaultBackendChoice::secret_service:
      return open_secret_service_vault();
    case VaultBackendChoice::automatic:
      break;
  }
  if (secret_service_available()) return open_secret_service_vault();
  return open_file_vault(home, std::move(passphrase));
}

Result<std::string> seal_bundle(const std::vector<KeyRecord>& records, const SecretString& passphrase) {
  payload::Entries entries;
  for (const auto& r : records) {
    if (auto ok = check_provider_name(r.provider); !ok) return std::unexpected(ok.error());
    if (auto ok = check_secret_hosts(r.hosts); !ok) return fail("export: '" + r.provider + "': " + ok.error().message);
    entries[r.provider] = payload::Entry{r.key, r.added_at, r.rotated_at, r.hosts, r.in_path && !r.hosts.empty()};
  }
  SecureBytes plain = payload::serialize(entries);
  return sealed::seal(sealed::Kind::bundle, plain.view(), passphrase, nullptr);
}

Result<void> check_bundle_header(std::string_view bytes, const std::string& subject_path) {
  sealed::Subject subject{"export bundle", subject_path, ""};
  auto header = sealed::parse_header(bytes, sealed::Kind::bundle, subject);
  if (!header) return std::unexpected(header.error());
  return {};
}

Result<std::vector<KeyRecord>> open_bundle(std::string_view bytes, const SecretString& passphrase,
                                           const std::string& subject_path) {
  sealed::Subject subject{"export bundle", subject_path, "check TOKFENCE_EXPORT_PASSPHRASE or the passphrase typed"};
  auto plain = sealed::open(bytes, sealed::Kind::bundle, passphrase, subject, nullptr);
  if (!plain) return std::unexpected(plain.error());
  auto entries = payload::parse(plain->view());
  if (!entries) return fail("export bundle: " + entries.error().message + ": " + subject_path);
  std::vector<KeyRecord> out;
  for (auto& [name, e] : *entries)
    out.push_back(KeyRecord{name, std::move(e.key), e.added_at, e.rotated_at, std::move(e.hosts), e.in_path});
  return out;
}

Result<void> check_key(std::string_view key) { return payload::check_key(key); }

Result<void> write_file_atomic(const std::filesystem::path& path, std::string_view bytes, unsigned mode) {
  // core/file: random O_EXCL temp name, mode set on the descriptor, fsync, renameat over `path` (a link
  // planted there is replaced, never written through), fsync of the directory.
  auto ok = file::write_atomic(path, bytes, {.mode = static_cast<mode_t>(mode), .owner = std::nullopt});
  if (!ok) return fail("cannot write: " + ok.error().message);
  return {};
}

}  // namespace tokfence::vault
