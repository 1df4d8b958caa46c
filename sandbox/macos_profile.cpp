#include "sandbox/macos_profile.hpp"

#include <cctype>

namespace tokfence::sandbox {
namespace {

Result<std::string> quoted(const std::filesystem::path& path) {
  const std::string& s = path.native();
  if (s.empty() || s[0] != '/') return fail("macos profile: path must be absolute: " + s);
  std::string out = "\"";
  for (char c : s) {
    if (c == '\0' || c == '\n' || c == '\r') return fail("macos profile: path contains a control character: " + s);
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

Result<std::string> subpath_rules(const std::vector<std::filesystem::path>& paths) {
  std::string out;
  for (const auto& p : paths) {
    auto q = quoted(p.lexically_normal());
    if (!q) return std::unexpected(q.error());
    out += "  (subpath " + *q + ")\n";
  }
  if (!out.empty()) out.pop_back();  // the template supplies the line break
  return out;
}

}  // namespace

std::vector<std::filesystem::path> macos_keychain_paths(const std::filesystem::path& user_home) {
  return {user_home / "Library" / "Keychains", "/Library/Keychains", "/Network/Library/Keychains"};
}

Result<std::string> render_macos_profile(std::string_view template_text, const MacProfileInput& input) {
  if (input.proxy_port <= 0 || input.proxy_port > 65535)
    return fail("macos profile: bad proxy port: " + std::to_string(input.proxy_port));
  auto socket = quoted(input.proxy_socket);
  if (!socket) return std::unexpected(socket.error());
  auto writable = subpath_rules(input.writable);
  if (!writable) return std::unexpected(writable.error());
  auto hidden = subpath_rules(input.hidden);
  if (!hidden) return std::unexpected(hidden.error());
  if (input.hidden.empty()) return fail("macos profile: nothing to hide: the tokfence home must be listed");
  for (char c : input.program)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_')
      return fail("macos profile: bad program name: " + input.program);

  const std::vector<std::pair<std::string, std::string>> values = {
      {"{{program}}", input.program},
      {"{{proxy_port}}", std::to_string(input.proxy_port)},
      // The template already has the quotes around the socket path.
      {"{{proxy_socket}}", socket->substr(1, socket->size() - 2)},
      {"{{writable_rules}}", *writable},
      {"{{hidden_rules}}", *hidden},
  };
  std::string out(template_text);
  for (const auto& [key, value] : values) {
    std::string::size_type pos = 0;
    while ((pos = out.find(key, pos)) != std::string::npos) {
      out.replace(pos, key.size(), value);
      pos += value.size();
    }
  }
  if (auto pos = out.find("{{"); pos != std::string::npos)
    return fail("macos profile: unknown placeholder in template: " + out.substr(pos, out.find("}}", pos) - pos + 2));
  return out;
}

std::vector<std::string> macos_sandbox_argv(const std::filesystem::path& profile, const std::vector<std::string>& argv) {
  std::vector<std::string> out = {"/usr/bin/sandbox-exec", "-f", profile.string()};
  out.insert(out.end(), argv.begin(), argv.end());
  return out;
}

}  // namespace tokfence::sandbox
