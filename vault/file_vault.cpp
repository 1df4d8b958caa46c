// The encrypted-file backend: vault.enc in the tokfence home.
//
// Readers take no lock: writers replace the file by rename, so a reader sees the old file or the new
// one, whole. Writers take an exclusive flock on vault.lock (never deleted, so every writer locks
// the same inode) for the whole read-modify-write, so two concurrent `vault add` both land.
//
// Cost: every write uses a fresh random salt, so a put derives two keys (the old salt to read, the
// new one to write), about 2 x 0.6 s. Reusing the read key for the write would need the salt to stay,
// which the format promises not to do. Both derived keys stay in a per-vault KeyCache, so further
// reads in the same process derive nothing.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <mutex>

#include "core/names.hpp"
#include "vault/payload.hpp"
#include "vault/sealed_file.hpp"
#include "vault/vault.hpp"

namespace tokfence::vault {

namespace {

namespace fs = std::filesystem;
using payload::Entries;

std::int64_t now() { return static_cast<std::int64_t>(std::time(nullptr)); }

std::string no_key_message(const std::string& provider, const std::string& fix) {
  return "vault: no key for provider '" + provider + "': " + fix;
}

class LockFile {
 public:
  LockFile() = default;
  ~LockFile() {
    if (fd_ >= 0) ::close(fd_);  // releases the flock
  }
  LockFile(const LockFile&) = delete;
  LockFile& operator=(const LockFile&) = delete;

  Result<void> acquire(const fs::path& path) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd_ < 0)
      return fail("vault: cannot write in the tokfence home: " + path.string() + ": " + std::strerror(errno) +
                  ": make TOKFENCE_HOME writable");
    while (::flock(fd_, LOCK_EX) != 0) {
      if (errno != EINTR) return fail("vault: cannot lock: " + path.string() + ": " + std::strerror(errno));
    }
    return {};
  }

 private:
  int fd_ = -1;
};

class FileVault final : public Vault {
 public:
  FileVault(Home home, PassphraseSource source) : home_(std::move(home)), source_(std::move(source)) {}

  std::string backend_name() const override { return "file"; }

  Result<std::optional<SecretString>> get(const std::string& provider) override {
    std::lock_guard lock(mutex_);
    auto entries = load();
    if (!entries) return std::unexpected(entries.error());
    auto it = entries->find(provider);
    if (it == entries->end()) return std::optional<SecretString>{};
    return std::optional<SecretString>{it->second.key};
  }

  Result<std::vector<std::pair<std::string, SecretString>>> get_all() override {
    std::lock_guard lock(mutex_);
    auto entries = load();
    if (!entries) return std::unexpected(entries.error());
    std::vector<std::pair<std::string, SecretString>> out;
    for (auto& [name, e] : *entries) out.emplace_back(name, std::move(e.key));
    return out;
  }

  Result<void> put(const std::string& provider, const SecretString& key, Overwrite overwrite,
                   const std::vector<std::string>& hosts, bool in_path) override {
    if (auto ok = check_provider_name(provider); !ok) return ok;
    if (auto ok = payload::check_key(key.reveal()); !ok) return ok;
    if (auto ok = check_secret_hosts(hosts); !ok) return ok;
    if (in_path && hosts.empty()) return fail("vault: a position (--in path) goes with the hosts: give --host too");
    std::lock_guard lock(mutex_);
    return modify([&](Entries& entries) -> Result<bool> {
      auto it = entries.find(provider);
      if (it != entries.end() && overwrite == Overwrite::no)
        return fail("vault: provider '" + provider + "' already has a key: replace it with 'tokfence vault rotate " +
                    provider + " -'");
      if (it == entries.end() && overwrite == Overwrite::existing_only)
        return fail(no_key_message(provider, "add one with 'tokfence vault add " + provider + " -'"));
      if (it == entries.end()) {
        entries.emplace(provider, payload::Entry{key, now(), 0, hosts, in_path});
      } else {
        it->second.key = key;
        it->second.rotated_at = now();
        if (!hosts.empty()) {
          it->second.hosts = hosts;
          it->second.in_path = in_path;
        }
      }
      return true;
    });
  }

  Result<void> remove(const std::string& provider) override {
    if (auto ok = check_provider_name(provider); !ok) return ok;
    std::lock_guard lock(mutex_);
    return modify([&](Entries& entries) -> Result<bool> {
      if (entries.erase(provider) == 0) return fail(no_key_message(provider, "see 'tokfence vault list'"));
      return true;
    });
  }

  Result<std::vector<KeyInfo>> list() override {
    std::lock_guard lock(mutex_);
    auto entries = load();
    if (!entries) return std::unexpected(entries.error());
    std::vector<KeyInfo> out;
    for (const auto& [name, e] : *entries)
      out.push_back(KeyInfo{name, "file", e.added_at, e.rotated_at, e.key.fingerprint(), e.hosts, e.in_path});
    return out;
  }

  Result<std::vector<KeyRecord>> records() override {
    std::lock_guard lock(mutex_);
    auto entries = load();
    if (!entries) return std::unexpected(entries.error());
    std::vector<KeyRecord> out;
    for (auto& [name, e] : *entries)
      out.push_back(KeyRecord{name, std::move(e.key), e.added_at, e.rotated_at, std::move(e.hosts), e.in_path});
    return out;
  }

  Result<std::vector<MergeReport>> merge(const std::vector<KeyRecord>& records, Overwrite overwrite) override {
    for (const auto& r : records) {
      if (auto ok = check_provider_name(r.provider); !ok) return std::unexpected(ok.error());
      if (auto ok = payload::check_key(r.key.reveal()); !ok)
        return fail("import: provider '" + r.provider + "': " + ok.error().message);
      if (auto ok = check_secret_hosts(r.hosts); !ok) return fail("import: '" + r.provider + "': " + ok.error().message);
    }
    std::lock_guard lock(mutex_);
    std::vector<MergeReport> reports;
    auto ok = modify([&](Entries& entries) -> Result<bool> {
      reports.clear();
      bool changed = false;
      for (const auto& r : records) {
        auto it = entries.find(r.provider);
        if (it == entries.end()) {
          entries.emplace(r.provider, payload::Entry{r.key, r.added_at ? r.added_at : now(), r.rotated_at, r.hosts, r.in_path && !r.hosts.empty()});
          reports.push_back({r.provider, MergeOutcome::added});
          changed = true;
        } else if (overwrite == Overwrite::yes) {
          it->second.key = r.key;
          it->second.rotated_at = now();
          it->second.hosts = r.hosts;
          it->second.in_path = r.in_path && !r.hosts.empty();
          reports.push_back({r.provider, MergeOutcome::replaced});
          changed = true;
        } else {
          reports.push_back({r.provider, MergeOutcome::skipped});
        }
      }
      return changed;
    });
    if (!ok) return std::unexpected(ok.error());
    return reports;
  }

 private:
  sealed::Subject subject() const {
    return {"vault", home_.vault_file().string(), "check TOKFENCE_VAULT_PASSPHRASE or the passphrase typed"};
  }

  Result<const SecretString*> passphrase(bool creating) {
    if (!passphrase_) {
      auto p = source_("vault", creating);
      if (!p) return std::unexpected(p.error());
      if (p->empty()) return fail("vault passphrase: is empty: nothing was changed");
      passphrase_ = std::move(*p);
    }
    return &*passphrase_;
  }

  // nullopt when there is no vault file yet.
  Result<std::optional<std::string>> read_file() const {
    const fs::path path = home_.vault_file();
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      if (errno == ENOENT) return std::optional<std::string>{};
      return fail("vault: cannot read: " + path.string() + ": " + std::strerror(errno));
    }
    std::string bytes;
    char buf[8192];
    while (true) {
      ssize_t n = ::read(fd, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        std::string message = "vault: cannot read: " + path.string() + ": " + std::strerror(errno);
        ::close(fd);
        return fail(message);
      }
      if (n == 0) break;
      bytes.append(buf, static_cast<std::size_t>(n));
    }
    ::close(fd);
    return std::optional<std::string>{std::move(bytes)};
  }

  Result<Entries> decode(const std::string& bytes) {
    // Cheap checks first: a foreign or truncated file is reported without asking for a passphrase.
    if (auto h = sealed::parse_header(bytes, sealed::Kind::vault, subject()); !h) return std::unexpected(h.error());
    auto pass = passphrase(false);
    if (!pass) return std::unexpected(pass.error());
    auto plain = sealed::open(bytes, sealed::Kind::vault, **pass, subject(), &cache_);
    if (!plain) return std::unexpected(plain.error());
    auto entries = payload::parse(plain->view());
    if (!entries) return fail("vault: " + entries.error().message + ": " + home_.vault_file().string());
    return entries;
  }

  Result<Entries> load() {
    auto bytes = read_file();
    if (!bytes) return std::unexpected(bytes.error());
    if (!*bytes) return Entries{};
    return decode(**bytes);
  }

  // Read-modify-write under the lock. `change` returns whether it changed anything (no write if
  // not) or an error (nothing written).
  template <class Change>
  Result<void> modify(Change change) {
    const fs::path path = home_.vault_file();
    std::error_code ec;
    bool exists = fs::exists(path, ec);
    if (!exists) {
      // Nothing to read: let a change that must fail (remove, rotate) fail before asking for a
      // passphrase for a vault that would never be written.
      Entries empty;
      if (auto dry = change(empty); !dry) return std::unexpected(dry.error());
    }
    // The home holds the vault: create it 0700, or tighten it if someone loosened it.
    struct stat st {};
    if (::stat(home_.root().c_str(), &st) != 0 || (st.st_mode & 077) != 0)
      if (auto ok = home_.ensure(); !ok)
        return fail("vault: cannot write in the tokfence home: " + ok.error().message + ": make TOKFENCE_HOME writable");
    if (exists) {
      // A foreign or truncated file is reported before a passphrase is asked for.
      auto bytes = read_file();
      if (!bytes) return std::unexpected(bytes.error());
      if (*bytes)
        if (auto h = sealed::parse_header(**bytes, sealed::Kind::vault, subject()); !h) return std::unexpected(h.error());
    }
    // Ask before taking the lock, so a slow typist does not block other writers.
    if (auto pass = passphrase(!exists); !pass) return std::unexpected(pass.error());

    LockFile lock;
    if (auto ok = lock.acquire(home_.root() / "vault.lock"); !ok) return ok;
    remove_stale_temporaries();
    auto entries = load();
    if (!entries) return std::unexpected(entries.error());
    auto changed = change(*entries);
    if (!changed) return std::unexpected(changed.error());
    if (!*changed) return {};
    SecureBytes plain = payload::serialize(*entries);
    auto sealed_bytes = sealed::seal(sealed::Kind::vault, plain.view(), **passphrase(false), &cache_);
    if (!sealed_bytes) return fail("vault: " + sealed_bytes.error().message);
    if (auto ok = write_file_atomic(path, *sealed_bytes, 0600); !ok)
      return fail("vault: " + ok.error().message + ": make TOKFENCE_HOME writable");
    return {};
  }

  // A writer killed between creating its temporary file and renaming it leaves the file behind.
  // Under the lock no other writer is mid-write, so any such file is garbage.
  void remove_stale_temporaries() {
    std::error_code ec;
    const std::string prefix = home_.vault_file().filename().string() + ".tmp-";
    for (const auto& entry : fs::directory_iterator(home_.root(), ec))
      if (entry.path().filename().string().starts_with(prefix)) fs::remove(entry.path(), ec);
  }

  Home home_;
  PassphraseSource source_;
  std::optional<SecretString> passphrase_;
  sealed::KeyCache cache_;
  std::mutex mutex_;
};

}  // namespace

std::unique_ptr<Vault> open_file_vault(const Home& home, PassphraseSource passphrase) {
  return std::make_unique<FileVault>(home, std::move(passphrase));
}

}  // namespace tokfence::vault
