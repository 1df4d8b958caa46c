#include "proxy/egress/local_ca.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <ctime>
#include <list>
#include <mutex>
#include <unordered_map>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "core/file.hpp"
#include "core/secret.hpp"

namespace tokfence::proxy::egress {

namespace {

namespace ssl = boost::asio::ssl;

template <class T, void (*Free)(T*)>
struct Deleter {
  void operator()(T* p) const { Free(p); }
};
using Pkey = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using Bio = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;
using Bignum = std::unique_ptr<BIGNUM, Deleter<BIGNUM, BN_free>>;
using Extension = std::unique_ptr<X509_EXTENSION, Deleter<X509_EXTENSION, X509_EXTENSION_free>>;
using GeneralNames = std::unique_ptr<GENERAL_NAMES, Deleter<GENERAL_NAMES, GENERAL_NAMES_free>>;

constexpr long kCaDays = 3650;
constexpr long kLeafBackdateSeconds = 3600;
constexpr long kLeafLifetimeSeconds = 7 * 24 * 3600;
constexpr std::time_t kLeafRemintBefore = 24 * 3600;  // re-minted when less than this is left
constexpr std::size_t kMaxPemBytes = 64 * 1024;

Pkey new_p256_key() { return Pkey(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256")); }

bool is_p256(EVP_PKEY* key) {
  if (!key || !EVP_PKEY_is_a(key, "EC")) return false;
  char group[64] = {};
  std::size_t len = 0;
  if (EVP_PKEY_get_group_name(key, group, sizeof group, &len) != 1) return false;
  return std::string_view(group, len) == "prime256v1" || std::string_view(group, len) == "P-256";
}

std::string to_pem(X509* cert) {
  Bio bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) return {};
  char* data = nullptr;
  const long size = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(size));
}

// A 128-bit random serial, positive and never zero.
bool set_random_serial(X509* cert) {
  std::array<unsigned char, 16> bytes{};
  if (RAND_bytes(bytes.data(), static_cast<int>(bytes.size())) != 1) return false;
  bytes[0] &= 0x7f;
  bytes[0] |= 0x01;
  Bignum bn(BN_bin2bn(bytes.data(), static_cast<int>(bytes.size()), nullptr));
  return bn && BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert)) != nullptr;
}

bool add_ext(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  Extension ext(X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value));
  return ext && X509_add_ext(cert, ext.get(), -1) == 1;
}

bool set_cn(X509_NAME* name, const std::string& cn) {
  return X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.data()),
                                    static_cast<int>(cn.size()), -1, 0) == 1;
}

Result<X509Ptr> make_ca_certificate(EVP_PKEY* key) {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') std::strcpy(host, "localhost");
  const std::string cn = std::string("tokfence local CA (") + std::string(host).substr(0, 40) + ")";
  X509Ptr cert(X509_new());
  bool ok = cert && X509_set_version(cert.get(), X509_VERSION_3) == 1 && set_random_serial(cert.get()) &&
            X509_gmtime_adj(X509_getm_notBefore(cert.get()), -kLeafBackdateSeconds) &&
            X509_time_adj_ex(X509_getm_notAfter(cert.get()), kCaDays, 0, nullptr) &&
            set_cn(X509_get_subject_name(cert.get()), cn) &&
            X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get())) == 1 &&
            X509_set_pubkey(cert.get(), key) == 1 &&
            add_ext(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0") &&
            add_ext(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign") &&
            add_ext(cert.get(), cert.get(), NID_subject_key_identifier, "hash") &&
            add_ext(cert.get(), cert.get(), NID_authority_key_identifier, "keyid:always") &&
            X509_sign(cert.get(), key, EVP_sha256()) > 0;
  if (!ok) return fail("egress: could not make the local CA certificate (OpenSSL)");
  return cert;
}

// The host as the leaf will name it: lower-case DNS name without a trailing dot, or an IP literal
// without brackets. Nothing else (no wildcard, no empty label, no odd character) is minted.
struct LeafName {
  std::string text;
  bool ip = false;
};

std::optional<LeafName> leaf_name(std::string host) {
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  unsigned char buf[16];
  if (::inet_pton(AF_INET, host.c_str(), buf) == 1 || ::inet_pton(AF_INET6, host.c_str(), buf) == 1)
    return LeafName{host, true};
  if (!host.empty() && host.back() == '.') host.pop_back();
  if (host.empty() || host.size() > 253) return std::nullopt;
  std::size_t label = 0;
  for (char& c : host) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (c == '.') {
      if (label == 0) return std::nullopt;
      label = 0;
      continue;
    }
    const bool allowed = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!allowed || ++label > 63) return std::nullopt;
  }
  if (label == 0) return std::nullopt;
  return LeafName{host, false};
}

int select_http11(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
                  void*) {
  for (unsigned i = 0; i < inlen;) {
    const unsigned len = in[i];
    if (i + 1 + len > inlen) break;
    if (len == 8 && std::memcmp(in + i + 1, "http/1.1", 8) == 0) {
      *out = in + i + 1;
      *outlen = 8;
      return SSL_TLSEXT_ERR_OK;
    }
    i += 1 + len;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

// fstatat without following: ENOENT -> nullopt; other errors -> error.
Result<std::optional<struct stat>> stat_entry(int dir, std::string_view name, const std::filesystem::path& shown) {
  struct stat st {};
  if (::fstatat(dir, std::string(name).c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) return std::optional<struct stat>(st);
  if (errno == ENOENT) return std::optional<struct stat>();
  return fail("egress: cannot read " + shown.string() + ": " + std::strerror(errno));
}

}  // namespace

struct LocalCa::Impl {
  Pkey key;
  X509Ptr cert;
  std::string cert_pem;

  struct Entry {
    std::shared_ptr<ssl::context> context;
    std::time_t not_after = 0;
    std::list<std::string>::iterator order;  // position in `lru` (front = most recent)
  };
  mutable std::mutex mutex;
  std::unordered_map<std::string, Entry> cache;
  std::list<std::string> lru;

  Result<std::shared_ptr<ssl::context>> mint(const LeafName& name, std::time_t now);
};

Result<std::shared_ptr<ssl::context>> LocalCa::Impl::mint(const LeafName& name, std::time_t now) {
  Pkey leaf_key = new_p256_key();
  X509Ptr leaf(X509_new());
  if (!leaf_key || !leaf) return fail("egress: could not make a leaf key for " + name.text + " (OpenSSL)");
  GeneralNames sans(GENERAL_NAMES_new());
  GENERAL_NAME* san = GENERAL_NAME_new();
  bool ok = sans && san;
  if (ok && name.ip) {
    ASN1_OCTET_STRING* ip = a2i_IPADDRESS(name.text.c_str());
    ok = ip != nullptr;
    if (ok) GENERAL_NAME_set0_value(san, GEN_IPADD, ip);
  } else if (ok) {
    ASN1_IA5STRING* dns = ASN1_IA5STRING_new();
    ok = dns && ASN1_STRING_set(dns, name.text.data(), static_cast<int>(name.text.size())) == 1;
    if (ok) GENERAL_NAME_set0_value(san, GEN_DNS, dns);
    else ASN1_IA5STRING_free(dns);
  }
  if (ok) {
    ok = sk_GENERAL_NAME_push(sans.get(), san) > 0;
    if (ok) san = nullptr;
  }
  GENERAL_NAME_free(san);
  const std::string cn = name.text.size() <= 64 ? name.text : std::string("tokfence leaf");
  ok = ok && X509_set_version(leaf.get(), X509_VERSION_3) == 1 && set_random_serial(leaf.get()) &&
       X509_time_adj_ex(X509_getm_notBefore(leaf.get()), 0, -kLeafBackdateSeconds, &now) &&
       X509_time_adj_ex(X509_getm_notAfter(leaf.get()), 0, kLeafLifetimeSeconds, &now) &&
       set_cn(X509_get_subject_name(leaf.get()), cn) &&
       X509_set_issuer_name(leaf.get(), X509_get_subject_name(cert.get())) == 1 &&
       X509_set_pubkey(leaf.get(), leaf_key.get()) == 1 &&
       X509_add1_ext_i2d(leaf.get(), NID_subject_alt_name, sans.get(), 0, X509V3_ADD_DEFAULT) == 1 &&
       add_ext(leaf.get(), cert.get(), NID_basic_constraints, "critical,CA:FALSE") &&
       add_ext(leaf.get(), cert.get(), NID_key_usage, "critical,digitalSignature") &&
       add_ext(leaf.get(), cert.get(), NID_ext_key_usage, "serverAuth") &&
       add_ext(leaf.get(), cert.get(), NID_subject_key_identifier, "hash") &&
       add_ext(leaf.get(), cert.get(), NID_authority_key_identifier, "keyid:always") &&
       X509_sign(leaf.get(), key.get(), EVP_sha256()) > 0;
  if (!ok) return fail("egress: could not make a leaf certificate for " + name.text + " (OpenSSL)");

  std::shared_ptr<ssl::context> context;
  try {
    context = std::make_shared<ssl::context>(ssl::context::tls_server);
  } catch (const std::exception&) {
    return fail("egress: could not make a TLS context for " + name.text + " (OpenSSL)");
  }
  SSL_CTX* native = context->native_handle();
  SSL_CTX_set_options(native, SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1 | SSL_OP_NO_COMPRESSION |
                                  SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  if (SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION) != 1 || SSL_CTX_use_certificate(native, leaf.get()) != 1 ||
      SSL_CTX_use_PrivateKey(native, leaf_key.get()) != 1 || SSL_CTX_check_private_key(native) != 1)
    return fail("egress: could not load the leaf for " + name.text + " into a TLS context (OpenSSL)");
  SSL_CTX_set_alpn_select_cb(native, select_http11, nullptr);
  return context;
}

LocalCa::LocalCa(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
LocalCa::~LocalCa() = default;

const std::string& LocalCa::certificate_pem() const { return impl_->cert_pem; }

std::size_t LocalCa::cached_hosts() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->cache.size();
}

Result<LocalCa> LocalCa::load_or_create(const std::filesystem::path& home_dir) {
  const std::filesystem::path key_path = egress_ca_key_path(home_dir), cert_path = egress_ca_certificate_path(home_dir);
  auto dir = file::open_dir_nofollow(home_dir);
  if (!dir) return std::unexpected(dir.error());
  auto impl = std::make_shared<Impl>();

  auto key_st = stat_entry(dir->get(), kEgressCaKeyFile, key_path);
  if (!key_st) return std::unexpected(key_st.error());
  auto cert_st = stat_entry(dir->get(), kEgressCaCertFile, cert_path);
  if (!cert_st) return std::unexpected(cert_st.error());

  bool write_cert = false;
  if (!*key_st) {
    // A new CA: key first (0600), then its certificate. A certificate left without its key is
    // replaced (after a check that it is a plain file of ours, so nothing planted is overwritten
    // silently: write_atomic_at replaces rather than follows anyway).
    impl->key = new_p256_key();
    if (!impl->key) return fail("egress: could not generate the local CA key (OpenSSL)");
    Bio bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_PrivateKey(bio.get(), impl->key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1)
      return fail("egress: could not encode the local CA key (OpenSSL)");
    char* data = nullptr;
    const long size = BIO_get_mem_data(bio.get(), &data);
    std::string pem(data, static_cast<std::size_t>(size));
    auto written = file::write_atomic_at(dir->get(), kEgressCaKeyFile, pem, file::WriteOptions{0600, std::nullopt});
    wipe(pem);
    if (!written) return std::unexpected(written.error());
    write_cert = true;
  } else {
    const struct stat& st = **key_st;
    if (!S_ISREG(st.st_mode) || st.st_uid != ::geteuid() || (st.st_mode & 077) != 0)
      return fail("egress: " + key_path.string() +
                  " must be a regular file of this user with mode 0600 (the daemon does not sign certificates with a "
                  "key others can read or replace): fix its mode, or remove it and egress-ca.pem to have a new CA made "
                  "(fences pick it up at their next start)");
    auto pem = file::read_at(dir->get(), kEgressCaKeyFile, kMaxPemBytes);
    if (!pem) return std::unexpected(pem.error());
    Bio bio(BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size())));
    impl->key.reset(bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr);
    wipe(*pem);
    if (!is_p256(impl->key.get()))
      return fail("egress: " + key_path.string() +
                  " is not an EC P-256 private key in PEM: remove it and egress-ca.pem to have a new CA made");
    if (!*cert_st) {
      write_cert = true;
    } else {
      const struct stat& cst = **cert_st;
      if (!S_ISREG(cst.st_mode) || cst.st_uid != ::geteuid() || (cst.st_mode & 022) != 0)
        return fail("egress: " + cert_path.string() +
                    " must be a regular file of this user not writable by others (every fence trusts it): fix its "
                    "mode, or remove it to have it made again from egress-ca.key");
      auto cert_pem = file::read_at(dir->get(), kEgressCaCertFile, kMaxPemBytes);
      if (!cert_pem) return std::unexpected(cert_pem.error());
      Bio cbio(BIO_new_mem_buf(cert_pem->data(), static_cast<int>(cert_pem->size())));
      impl->cert.reset(cbio ? PEM_read_bio_X509(cbio.get(), nullptr, nullptr, nullptr) : nullptr);
      if (!impl->cert || X509_check_ca(impl->cert.get()) == 0 || X509_check_private_key(impl->cert.get(), impl->key.get()) != 1)
        return fail("egress: " + cert_path.string() + " is not the CA certificate of " + key_path.string() +
                    ": remove both to have a new CA made (fences pick it up at their next start)");
      impl->cert_pem = std::move(*cert_pem);
    }
  }
  if (write_cert) {
    if (*cert_st && (!S_ISREG((**cert_st).st_mode) || (**cert_st).st_uid != ::geteuid()))
      return fail("egress: " + cert_path.string() + " is not a regular file of this user: remove it");
    auto cert = make_ca_certificate(impl->key.get());
    if (!cert) return std::unexpected(cert.error());
    impl->cert = std::move(*cert);
    impl->cert_pem = to_pem(impl->cert.get());
    if (impl->cert_pem.empty()) return fail("egress: could not encode the local CA certificate (OpenSSL)");
    auto written = file::write_atomic_at(dir->get(), kEgressCaCertFile, impl->cert_pem, file::WriteOptions{0644, std::nullopt});
    if (!written) return std::unexpected(written.error());
  }
  return LocalCa(std::move(impl));
}

Result<std::shared_ptr<ssl::context>> LocalCa::server_context(const std::string& host) {
  auto name = leaf_name(host);
  if (!name) {
    std::string shown;
    for (char c : host.substr(0, 64)) shown += (c >= 0x20 && c < 0x7f) ? c : '?';
    return fail("egress: no certificate for '" + shown + "': not a DNS name or IP address");
  }
  const std::time_t now = std::time(nullptr);
  {
    std::lock_guard lock(impl_->mutex);
    auto it = impl_->cache.find(name->text);
    if (it != impl_->cache.end() && it->second.not_after - now >= kLeafRemintBefore) {
      impl_->lru.splice(impl_->lru.begin(), impl_->lru, it->second.order);
      return it->second.context;
    }
  }
  // Minted outside the lock (a millisecond or so): other hosts' look-ups do not wait. Two threads
  // minting for the same new host both succeed; the later one's context is kept.
  auto context = impl_->mint(*name, now);
  if (!context) return context;
  std::lock_guard lock(impl_->mutex);
  auto it = impl_->cache.find(name->text);
  if (it != impl_->cache.end()) {
    it->second.context = *context;
    it->second.not_after = now + kLeafLifetimeSeconds;
    impl_->lru.splice(impl_->lru.begin(), impl_->lru, it->second.order);
    return context;
  }
  while (impl_->cache.size() >= kMaxCachedLeaves && !impl_->lru.empty()) {
    impl_->cache.erase(impl_->lru.back());
    impl_->lru.pop_back();
  }
  impl_->lru.push_front(name->text);
  impl_->cache.emplace(name->text, Impl::Entry{*context, now + kLeafLifetimeSeconds, impl_->lru.begin()});
  return context;
}

}  // namespace tokfence::proxy::egress
