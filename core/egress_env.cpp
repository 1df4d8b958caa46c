#include "core/egress_env.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <memory>

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "core/file.hpp"
#include "core/names.hpp"
#include "core/providers.hpp"

namespace tokfence {

namespace {

constexpr std::string_view kPemBegin = "-----BEGIN CERTIFICATE-----";

std::string upper(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return out;
}

}  // namespace

std::map<std::string, std::string> egress_proxy_env(std::string_view proxy_url) {
  std::map<std::string, std::string> env;
  for (const char* name : {"HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy"})
    env[name] = std::string(proxy_url);
  env["NO_PROXY"] = env["no_proxy"] = std::string(kEgressNoProxy);
  return env;
}

std::filesystem::path egress_ca_certificate_path(const std::filesystem::path& home_dir) {
  return home_dir / std::string(kEgressCaCertFile);
}

std::filesystem::path egress_ca_key_path(const std::filesystem::path& home_dir) {
  return home_dir / std::string(kEgressCaKeyFile);
}

Result<std::string> read_egress_ca_certificate(const std::filesystem::path& home_dir) {
  const std::string path = egress_ca_certificate_path(home_dir).string();
  const std::string fix = ": restart the daemon ('tokfence stop', 'tokfence start -d'), which makes the local CA";
  auto dir = file::open_dir_nofollow(home_dir);
  if (!dir) return std::unexpected(dir.error());
  struct stat st {};
  if (::fstatat(dir->get(), std::string(kEgressCaCertFile).c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
    return fail("egress: local CA certificate " + path + ": " + std::strerror(errno) + fix);
  if (!S_ISREG(st.st_mode) || st.st_uid != ::geteuid() || (st.st_mode & 022) != 0)
    return fail("egress: local CA certificate " + path +
                ": must be a regular file of this user not writable by others (a fence would trust whatever it "
                "holds): remove it and egress-ca.key, then restart the daemon");
  auto pem = file::read_at(dir->get(), kEgressCaCertFile, 64 * 1024);
  if (!pem) return fail("egress: local CA certificate " + path + ": " + pem.error().message + fix);
  const auto first = pem->find(kPemBegin);
  const bool one = first != std::string::npos && pem->find(kPemBegin, first + 1) == std::string::npos;
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size())), BIO_free);
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      bio ? PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr) : nullptr, X509_free);
  if (!one || !cert || X509_check_ca(cert.get()) == 0)
    return fail("egress: local CA certificate " + path +
                ": not one PEM CA certificate: remove it and egress-ca.key, then restart the daemon");
  return std::move(*pem);
}

std::string egress_ca_bundle(std::string_view ca_pem, const std::filesystem::path& system_bundle) {
  std::string bundle;
  auto dir = file::open_dir_nofollow_any_owner(system_bundle.parent_path());
  if (dir) {
    // The system's bundle is a symlink on some systems: follow it (it is root's, not the agent's).
    const int fd = ::openat(dir->get(), system_bundle.filename().c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd >= 0) {
      file::Fd owned(fd);
      struct stat st {};
      if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= (4 << 20)) {
        char buffer[64 * 1024];
        for (ssize_t n; (n = ::read(fd, buffer, sizeof buffer)) != 0 && bundle.size() <= (4u << 20);) {
          if (n < 0 && errno == EINTR) continue;
          if (n < 0) {
            bundle.clear();
            break;
          }
          bundle.append(buffer, static_cast<std::size_t>(n));
        }
      }
    }
  }
  if (bundle.size() > (4u << 20)) bundle.clear();
  if (!bundle.empty() && bundle.back() != '\n') bundle.push_back('\n');
  bundle.append(ca_pem);
  if (!bundle.empty() && bundle.back() != '\n') bundle.push_back('\n');
  return bundle;
}

std::map<std::string, std::string> egress_ca_env(std::string_view ca_file, std::string_view bundle_file) {
  std::map<std::string, std::string> env;
  env["NODE_EXTRA_CA_CERTS"] = std::string(ca_file);
  for (const char* name : {"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO"})
    env[name] = std::string(bundle_file);
  return env;
}

std::string secret_placeholder(std::string_view name) {
  return std::string(kSecretPlaceholderPrefix) + std::string(name);
}

bool is_reserved_fence_variable(std::string_view name) {
  const std::string u = upper(name);
  auto ends_with = [&](std::string_view suffix) { return u.size() >= suffix.size() && u.ends_with(suffix); };
  if (u == "NO_PROXY" || ends_with("_PROXY") || u.starts_with("TOKFENCE_") || u.starts_with("OPENCLAW_") ||
      ends_with("_API_KEY") || ends_with("_BASE_URL") || ends_with("_AUTH_TOKEN"))
    return true;
  for (const auto& [var, value] : egress_ca_env("", ""))
    if (u == var) return true;
  for (const char* own : {"HOME", "PATH", "TMPDIR", "PWD", "SSL_CERT_DIR"})
    if (u == own) return true;
  for (const auto& spec : builtin_providers())
    for (const auto& var : key_env_vars(spec.name))
      if (u == var) return true;
  return false;
}

Result<std::pair<std::string, std::string>> parse_secret_flag(std::string_view entry, std::string_view flag) {
  // At most 40 printable characters of the entry: a pasted secret in place of a name must not be
  // echoed whole (as core/names does for provider names).
  std::string shown;
  for (char c : entry.substr(0, 40)) shown += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (entry.size() > 40) shown += "...";
  const std::string prefix = std::string(flag) + ": '" + shown + "': ";
  const auto eq = entry.find('=');
  if (eq == std::string_view::npos) return fail(prefix + "expected VAR=NAME (e.g. TELEGRAM_BOT_TOKEN=telegram-bot)");
  const std::string var(entry.substr(0, eq)), name(entry.substr(eq + 1));
  const bool var_ok = !var.empty() && var.size() <= 128 && (std::isalpha(static_cast<unsigned char>(var[0])) || var[0] == '_') &&
                      std::all_of(var.begin(), var.end(), [](char c) {
                        return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
                      });
  if (!var_ok) return fail(prefix + "variable name must match [A-Za-z_][A-Za-z0-9_]*");
  if (is_reserved_fence_variable(var))
    return fail(prefix + var + " is one of tokfence's own variables in the fence: pick another name");
  if (!check_provider_name(name)) return fail(prefix + "secret name must match [a-z0-9][a-z0-9_-]{0,31}");
  return std::pair{var, name};
}

}  // namespace tokfence
