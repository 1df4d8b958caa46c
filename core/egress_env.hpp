#pragma once
// The environment that points HTTP clients inside a fence (a `tokfence run` sandbox, a `tokfence
// launch` container) at tokfence's forward proxy. The relay inside the fence serves the daemon's
// per-fence listener on loopback; that one listener answers both model requests and, as a forward
// proxy (CONNECT, absolute-form), everything else, which the daemon's egress policy allows or
// refuses with a 403 naming the rule (docs/EGRESS.md).
//
// Set always, also with no --allow rule: a client that honours the variables then gets tokfence's
// clear 403 ("not allowed: run 'tokfence egress allow ...'") instead of an opaque connect failure.
// The values are tokfence's own: whatever the user's shell had is never inherited (the sandbox's
// allow-list drops HTTP_PROXY and friends, a container starts from its image's environment).
//
// Also here, because run and launch both need them and neither may include the other: the local
// CA's files and trust variables (the daemon terminates TLS for hosts with a bound secret with
// leaves of that CA, proxy/egress/local_ca.hpp), and the secret placeholders of `--secret`.
#include <filesystem>
#include <map>
#include <string>
#include <string_view>
#include <utility>

#include "core/error.hpp"

namespace tokfence {

// HTTPS_PROXY, HTTP_PROXY, ALL_PROXY and their lower-case twins = `proxy_url` (e.g.
// "http://127.0.0.1:9471"); NO_PROXY and no_proxy = "127.0.0.1,localhost,::1", so requests to the
// model proxy itself (and to servers the agent runs on its own loopback) go direct.
std::map<std::string, std::string> egress_proxy_env(std::string_view proxy_url);

// The loopback names in NO_PROXY.
inline constexpr std::string_view kEgressNoProxy = "127.0.0.1,localhost,::1";

// --- the local CA inside the fence ---

// In the tokfence home: the CA's private key (PKCS#8 PEM, 0600, the daemon's alone) and its
// certificate (PEM, 0644). Only the daemon creates them, at start.
inline constexpr std::string_view kEgressCaKeyFile = "egress-ca.key";
inline constexpr std::string_view kEgressCaCertFile = "egress-ca.pem";
// The two files a fence gets, side by side in a directory it sees read-only: the CA alone, and the
// host's system bundle followed by the CA (for clients that replace rather than add to the trust).
inline constexpr std::string_view kFenceCaFile = "egress-ca.pem";
inline constexpr std::string_view kFenceCaBundleFile = "egress-ca-bundle.pem";
// Where the host's system bundle is read from (Debian's; absent elsewhere: the bundle is the CA alone).
inline constexpr std::string_view kSystemCaBundle = "/etc/ssl/certs/ca-certificates.crt";

std::filesystem::path egress_ca_certificate_path(const std::filesystem::path& home_dir);
std::filesystem::path egress_ca_key_path(const std::filesystem::path& home_dir);

// Reads the CA certificate the daemon made (<home>/egress-ca.pem) for a fence: without following a
// symlink, a regular file of this user not writable by group or others, at most 64 KiB, exactly one
// PEM certificate that parses as X.509 with CA:TRUE. Any problem is an error naming the file and
// the fix (the caller fails closed: the agent does not start without the fence's trust).
Result<std::string> read_egress_ca_certificate(const std::filesystem::path& home_dir);

// `system_bundle`'s certificates (when the file exists and is readable; at most 4 MiB) followed by
// `ca_pem`. A missing or unreadable system bundle gives `ca_pem` alone.
std::string egress_ca_bundle(std::string_view ca_pem,
                             const std::filesystem::path& system_bundle = std::filesystem::path(kSystemCaBundle));

// NODE_EXTRA_CA_CERTS = `ca_file` (Node adds it to its own roots); SSL_CERT_FILE,
// REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, GIT_SSL_CAINFO = `bundle_file` (these replace the roots).
// Both paths as the fence sees them.
std::map<std::string, std::string> egress_ca_env(std::string_view ca_file, std::string_view bundle_file);

// --- secrets bound to hosts: placeholders, never the secret ---

// `--secret VAR=NAME` puts kSecretPlaceholderPrefix + NAME into VAR; the daemon replaces it with
// the secret only on the wire to a host the secret is bound to.
inline constexpr std::string_view kSecretPlaceholderPrefix = "tokfence-secret:";

std::string secret_placeholder(std::string_view name);

// True for the variables tokfence sets in a fence itself, which `--secret` may not name: every
// *_PROXY (any case), the CA variables above, TOKFENCE_*, the providers' key variables
// (core/providers key_env_vars), *_API_KEY, *_BASE_URL, *_AUTH_TOKEN, OPENCLAW_* and the few
// variables a fence's layout depends on (HOME, PATH, TMPDIR, PWD).
bool is_reserved_fence_variable(std::string_view name);

// Parses one `--secret` entry "VAR=NAME": VAR must match [A-Za-z_][A-Za-z0-9_]* and not be
// reserved; NAME a valid provider-style name (core/names). The error names `flag` and the entry,
// e.g. "--secret: 'HTTPS_PROXY=x': HTTPS_PROXY is tokfence's own variable". Returns {VAR, NAME}.
Result<std::pair<std::string, std::string>> parse_secret_flag(std::string_view entry,
                                                              std::string_view flag = "--secret");

}  // namespace tokfence
