// proxy/egress/local_ca: the local CA whose leaves the proxy presents for hosts it terminates TLS
// for. Files (created, reloaded, refused when others could read or swap them), leaves (verify
// against this CA only, DNS/IP SANs, cached), and a real TLS handshake with an OpenSSL client that
// trusts only the CA (hostname verification, ALPN http/1.1 only).
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "core/egress_env.hpp"
#include "core/file.hpp"
#include "proxy/egress/local_ca.hpp"
#include "temp_dir.hpp"

using namespace tokfence;
using tokfence::proxy::egress::LocalCa;
namespace fs = std::filesystem;

namespace {

using test::TempDir;

X509* parse_cert(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  return cert;
}

X509* leaf_of(const std::shared_ptr<boost::asio::ssl::context>& ctx) {
  return SSL_CTX_get0_certificate(ctx->native_handle());
}

// X509_verify_cert of `leaf` against a store holding only `ca_pem`, then X509_check_host/ip.
bool verifies(X509* leaf, const std::string& ca_pem, const std::string& host, bool ip = false) {
  X509* ca = parse_cert(ca_pem);
  X509_STORE* store = X509_STORE_new();
  X509_STORE_add_cert(store, ca);
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store, leaf, nullptr);
  X509_STORE_CTX_set_purpose(ctx, X509_PURPOSE_SSL_SERVER);
  bool ok = X509_verify_cert(ctx) == 1;
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  X509_free(ca);
  if (!ok) return false;
  return ip ? X509_check_ip_asc(leaf, host.c_str(), 0) == 1
            : X509_check_host(leaf, host.data(), host.size(), 0, nullptr) == 1;
}

struct Handshake {
  bool ok = false;
  std::string alpn;
  long verify_result = -1;
};

// A TLS handshake over a socketpair: the server side uses `server` (from server_context), the
// client trusts only `ca_pem`, verifies the peer and `host`, and offers `alpn` (wire format).
Handshake handshake(const std::shared_ptr<boost::asio::ssl::context>& server, const std::string& ca_pem,
                    const std::string& host, const std::string& alpn) {
  ::signal(SIGPIPE, SIG_IGN);  // a refused handshake closes one end while the other still writes
  int fds[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
  std::thread server_side([&] {
    SSL* s = SSL_new(server->native_handle());
    SSL_set_fd(s, fds[0]);
    if (SSL_accept(s) == 1) SSL_shutdown(s);
    SSL_free(s);
    ::close(fds[0]);
  });
  SSL_CTX* cctx = SSL_CTX_new(TLS_client_method());
  X509* ca = parse_cert(ca_pem);
  X509_STORE_add_cert(SSL_CTX_get_cert_store(cctx), ca);
  X509_free(ca);
  SSL_CTX_set_verify(cctx, SSL_VERIFY_PEER, nullptr);
  SSL* c = SSL_new(cctx);
  SSL_set_fd(c, fds[1]);
  SSL_set_tlsext_host_name(c, host.c_str());
  SSL_set1_host(c, host.c_str());
  if (!alpn.empty())
    SSL_set_alpn_protos(c, reinterpret_cast<const unsigned char*>(alpn.data()), static_cast<unsigned>(alpn.size()));
  Handshake h;
  h.ok = SSL_connect(c) == 1;
  h.verify_result = SSL_get_verify_result(c);
  const unsigned char* proto = nullptr;
  unsigned len = 0;
  SSL_get0_alpn_selected(c, &proto, &len);
  if (proto) h.alpn.assign(reinterpret_cast<const char*>(proto), len);
  if (h.ok) SSL_shutdown(c);
  SSL_free(c);
  SSL_CTX_free(cctx);
  ::close(fds[1]);
  server_side.join();
  return h;
}

}  // namespace

TEST_CASE("egress::LocalCa is created once, 0600 key and 0644 certificate, and reloaded the same") {
  TempDir home;
  auto ca = LocalCa::load_or_create(home.path);
  REQUIRE(ca);
  struct stat st {};
  REQUIRE(::stat(egress_ca_key_path(home.path).c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  REQUIRE(::stat(egress_ca_certificate_path(home.path).c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0644);
  std::ifstream in(egress_ca_certificate_path(home.path));
  std::string on_disk((std::istreambuf_iterator<char>(in)), {});
  CHECK(on_disk == ca->certificate_pem());

  auto again = LocalCa::load_or_create(home.path);
  REQUIRE(again);
  CHECK(again->certificate_pem() == ca->certificate_pem());

  X509* cert = parse_cert(ca->certificate_pem());
  REQUIRE(cert);
  char cn[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof cn);
  CHECK(std::string(cn).starts_with("tokfence local CA ("));
  CHECK(X509_check_ca(cert) != 0);
  auto* bc = static_cast<BASIC_CONSTRAINTS*>(X509_get_ext_d2i(cert, NID_basic_constraints, nullptr, nullptr));
  REQUIRE(bc);
  CHECK(bc->ca);
  CHECK(ASN1_INTEGER_get(bc->pathlen) == 0);
  BASIC_CONSTRAINTS_free(bc);
  CHECK((X509_get_key_usage(cert) & (KU_KEY_CERT_SIGN | KU_CRL_SIGN)) == (KU_KEY_CERT_SIGN | KU_CRL_SIGN));
  // The core reader a fence uses accepts it.
  auto read = read_egress_ca_certificate(home.path);
  REQUIRE(read);
  CHECK(*read == ca->certificate_pem());
  X509_free(cert);
}

TEST_CASE("egress::LocalCa leaf verifies against its CA with the host name, and not against another CA") {
  TempDir home, other_home;
  auto ca = LocalCa::load_or_create(home.path);
  auto other = LocalCa::load_or_create(other_home.path);
  REQUIRE(ca);
  REQUIRE(other);
  auto ctx = ca->server_context("api.telegram.org");
  REQUIRE(ctx);
  X509* leaf = leaf_of(*ctx);
  REQUIRE(leaf);
  CHECK(verifies(leaf, ca->certificate_pem(), "api.telegram.org"));
  CHECK_FALSE(verifies(leaf, ca->certificate_pem(), "evil.example"));
  CHECK_FALSE(verifies(leaf, other->certificate_pem(), "api.telegram.org"));
  CHECK((X509_get_extended_key_usage(leaf) & XKU_SSL_SERVER) != 0);
  CHECK(X509_check_ca(leaf) == 0);
  // A different host gets a different leaf; upper case and a trailing dot name the same host.
  auto same = ca->server_context("API.Telegram.org.");
  REQUIRE(same);
  CHECK(same->get() == ctx->get());
  auto another = ca->server_context("example.com");
  REQUIRE(another);
  CHECK(another->get() != ctx->get());
  CHECK(ca->cached_hosts() == 2);
}

TEST_CASE("egress::LocalCa leaf for an IP literal carries an IP SAN") {
  TempDir home;
  auto ca = LocalCa::load_or_create(home.path);
  REQUIRE(ca);
  auto v4 = ca->server_context("127.0.0.1");
  REQUIRE(v4);
  CHECK(verifies(leaf_of(*v4), ca->certificate_pem(), "127.0.0.1", true));
  CHECK_FALSE(verifies(leaf_of(*v4), ca->certificate_pem(), "127.0.0.2", true));
  auto v6 = ca->server_context("[::1]");
  REQUIRE(v6);
  CHECK(verifies(leaf_of(*v6), ca->certificate_pem(), "::1", true));
  for (const char* bad : {"", "*.example.com", "a..b", "host name", "evil.com/x", "a,DNS:evil.com"})
    CHECK_FALSE(ca->server_context(bad));
}

TEST_CASE("egress::LocalCa caches one context per host, bounded") {
  TempDir home;
  auto ca = LocalCa::load_or_create(home.path);
  REQUIRE(ca);
  auto first = ca->server_context("registry.npmjs.org");
  auto second = ca->server_context("registry.npmjs.org");
  REQUIRE(first);
  REQUIRE(second);
  CHECK(first->get() == second->get());
  // Copies share the cache (the daemon hands one to each I/O thread).
  LocalCa copy = *ca;
  auto third = copy.server_context("registry.npmjs.org");
  REQUIRE(third);
  CHECK(third->get() == first->get());
  for (int i = 0; i < static_cast<int>(LocalCa::kMaxCachedLeaves) + 5; ++i)
    REQUIRE(ca->server_context("h" + std::to_string(i) + ".example"));
  CHECK(ca->cached_hosts() == LocalCa::kMaxCachedLeaves);
}

TEST_CASE("egress::LocalCa refuses a key others can read, a symlinked key, and a key that is not the certificate's") {
  TempDir home;
  REQUIRE(LocalCa::load_or_create(home.path));
  const fs::path key = egress_ca_key_path(home.path);

  SECTION("0644 key") {
    fs::permissions(key, fs::perms(0644));
    auto ca = LocalCa::load_or_create(home.path);
    REQUIRE_FALSE(ca);
    CHECK(ca.error().message.find("0600") != std::string::npos);
  }
  SECTION("symlinked key") {
    const fs::path real = home.path / "elsewhere.key";
    fs::rename(key, real);
    fs::create_symlink(real, key);
    REQUIRE_FALSE(LocalCa::load_or_create(home.path));
  }
  SECTION("another CA's key") {
    TempDir other;
    REQUIRE(LocalCa::load_or_create(other.path));
    fs::copy_file(egress_ca_key_path(other.path), key, fs::copy_options::overwrite_existing);
    fs::permissions(key, fs::perms(0600));
    auto ca = LocalCa::load_or_create(home.path);
    REQUIRE_FALSE(ca);
    CHECK(ca.error().message.find("not the CA certificate") != std::string::npos);
  }
  SECTION("a certificate writable by others, or a symlink, is refused by the daemon and by a fence") {
    const fs::path cert = egress_ca_certificate_path(home.path);
    fs::permissions(cert, fs::perms(0666));
    CHECK_FALSE(LocalCa::load_or_create(home.path));
    CHECK_FALSE(read_egress_ca_certificate(home.path));
    fs::permissions(cert, fs::perms(0644));
    fs::rename(cert, home.path / "real.pem");
    fs::create_symlink(home.path / "real.pem", cert);
    CHECK_FALSE(LocalCa::load_or_create(home.path));
    CHECK_FALSE(read_egress_ca_certificate(home.path));
  }
  SECTION("a missing certificate is made again from the key") {
    fs::remove(egress_ca_certificate_path(home.path));
    CHECK_FALSE(read_egress_ca_certificate(home.path));
    auto ca = LocalCa::load_or_create(home.path);
    REQUIRE(ca);
    auto read = read_egress_ca_certificate(home.path);
    REQUIRE(read);
    CHECK(*read == ca->certificate_pem());
  }
}

TEST_CASE("egress::LocalCa TLS handshake: a client trusting only the CA verifies the host and gets ALPN http/1.1") {
  TempDir home, other_home;
  auto ca = LocalCa::load_or_create(home.path);
  auto other = LocalCa::load_or_create(other_home.path);
  REQUIRE(ca);
  REQUIRE(other);
  auto ctx = ca->server_context("api.github.com");
  REQUIRE(ctx);
  const std::string h2_and_http11("\x02h2\x08http/1.1", 12);
  auto good = handshake(*ctx, ca->certificate_pem(), "api.github.com", h2_and_http11);
  CHECK(good.ok);
  CHECK(good.verify_result == X509_V_OK);
  CHECK(good.alpn == "http/1.1");

  auto h2_only = handshake(*ctx, ca->certificate_pem(), "api.github.com", std::string("\x02h2", 3));
  CHECK(h2_only.ok);
  CHECK(h2_only.alpn.empty());

  auto wrong_host = handshake(*ctx, ca->certificate_pem(), "api.gitlab.com", h2_and_http11);
  CHECK_FALSE(wrong_host.ok);
  auto wrong_ca = handshake(*ctx, other->certificate_pem(), "api.github.com", h2_and_http11);
  CHECK_FALSE(wrong_ca.ok);
}

TEST_CASE("core::egress_ca_env and egress_ca_bundle: the CA alone for Node, system bundle + CA for the rest") {
  auto env = egress_ca_env("/run/x/egress-ca.pem", "/run/x/egress-ca-bundle.pem");
  CHECK(env.at("NODE_EXTRA_CA_CERTS") == "/run/x/egress-ca.pem");
  for (const char* name : {"SSL_CERT_FILE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO"})
    CHECK(env.at(name) == "/run/x/egress-ca-bundle.pem");
  CHECK(env.size() == 5);
  TempDir dir;
  {
    std::ofstream(dir.path / "system.crt") << "SYSTEM-CERTS";
  }
  CHECK(egress_ca_bundle("CA\n", dir.path / "system.crt") == "SYSTEM-CERTS\nCA\n");
  CHECK(egress_ca_bundle("CA\n", dir.path / "absent.crt") == "CA\n");
}

TEST_CASE("core::parse_secret_flag: VAR=NAME, never one of tokfence's own variables") {
  auto ok = parse_secret_flag("TELEGRAM_BOT_TOKEN=telegram-bot");
  REQUIRE(ok);
  CHECK(ok->first == "TELEGRAM_BOT_TOKEN");
  CHECK(ok->second == "telegram-bot");
  CHECK(secret_placeholder("telegram-bot") == "tokfence-secret:telegram-bot");
  for (const char* bad : {"NOEQUALS", "=name", "1VAR=name", "V-AR=name", "VAR=", "VAR=Bad_Name", "VAR=a/b",
                          "HTTPS_PROXY=x", "https_proxy=x", "NO_PROXY=x", "SSL_CERT_FILE=x", "NODE_EXTRA_CA_CERTS=x",
                          "TOKFENCE_HOME=x", "OPENAI_API_KEY=x", "ANTHROPIC_BASE_URL=x", "HOME=x", "PATH=x"}) {
    auto r = parse_secret_flag(bad, "--secret");
    CHECK_FALSE(r);
    if (!r) CHECK(r.error().message.starts_with("--secret: '"));
  }
  // A pasted secret in place of the name is not echoed whole.
  const std::string pasted = "TOKEN=" + std::string(80, 'k');
  auto r = parse_secret_flag(pasted);
  REQUIRE_FALSE(r);
  CHECK(r.error().message.find(std::string(60, 'k')) == std::string::npos);
}
