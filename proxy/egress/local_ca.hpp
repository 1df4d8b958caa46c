#pragma once
// tokfence's local certificate authority (issue #18, "Secrets bound to hosts"): for a host with a
// bound secret the daemon terminates the agent's TLS itself, presenting a leaf certificate for that
// host signed by this CA, and the fence trusts the CA (core/egress_env.hpp: the fence's CA files and
// variables). The CA never leaves the tokfence home; only its certificate does.
//
//  - <home>/egress-ca.key: EC P-256, PKCS#8 PEM, mode 0600; <home>/egress-ca.pem: the certificate,
//    0644. Created when absent, by the daemon at start only. A key file that is a symlink, not ours,
//    readable by group or others, not EC P-256, or not the certificate's key is an error (fail
//    closed: the daemon does not sign with a key others could read or have planted), as is a
//    certificate file that is a symlink, not ours or writable by others. A key whose certificate is
//    missing gets a new certificate (fences pick it up at their next start).
//  - CA certificate: CN "tokfence local CA (<hostname>)", basicConstraints critical CA:TRUE
//    pathlen:0, keyUsage keyCertSign+cRLSign, 10 years.
//  - Leaves: one per host, EC P-256, DNS SAN (IP SAN for an IPv4/IPv6 literal), CA:FALSE,
//    digitalSignature, serverAuth, 128-bit random serial, valid from now-1h to now+7d; cached (at
//    most kMaxCachedLeaves hosts, least recently used evicted) and re-minted when under a day is left.
#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>

#include <boost/asio/ssl/context.hpp>

#include "core/egress_env.hpp"  // egress_ca_certificate_path, egress_ca_key_path
#include "core/error.hpp"

namespace tokfence::proxy::egress {

class LocalCa {
 public:
  static constexpr std::size_t kMaxCachedLeaves = 1024;

  // Loads <home_dir>/egress-ca.{key,pem}, creating them when absent (see above for what is refused).
  static Result<LocalCa> load_or_create(const std::filesystem::path& home_dir);

  const std::string& certificate_pem() const;

  // A server TLS context presenting a leaf for `host` (a DNS name, or an IPv4/IPv6 literal, with or
  // without brackets): TLS 1.2+, ALPN selects "http/1.1" only (a client that offers only h2 gets no
  // ALPN and speaks HTTP/1.1 or gives up). The same context for the same host until its leaf has
  // under a day left. Thread-safe. A host that is not a plausible DNS name or IP literal is an error.
  Result<std::shared_ptr<boost::asio::ssl::context>> server_context(const std::string& host);

  // How many hosts have a cached context (for tests).
  std::size_t cached_hosts() const;

  // Copies share the key and the cache.
  LocalCa(const LocalCa&) = default;
  LocalCa& operator=(const LocalCa&) = default;
  LocalCa(LocalCa&&) noexcept = default;
  LocalCa& operator=(LocalCa&&) noexcept = default;
  ~LocalCa();

 private:
  struct Impl;
  explicit LocalCa(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

}  // namespace tokfence::proxy::egress
