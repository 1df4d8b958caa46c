// The control socket's request handling: one line of JSON from a local client, parsed the way
// ControlServer does (json::parse without exceptions) and dispatched through a ControlRouter
// whose handlers read their arguments like the daemon's do. Malformed requests must become
// {"ok": false, ...} answers, never an exception or a crash.
#include <cstdint>
#include <string>

#include "proxy/control/protocol.hpp"
#include "tests/fuzz/fuzz_input.hpp"

using namespace tokfence::proxy;

namespace {

const ControlRouter& router() {
  static ControlRouter r;  // not copyable (it holds a mutex): filled in place, once
  static const bool filled = [] {
    r.add("ping", [](const json&) -> tokfence::Result<json> { return json{{"pong", true}}; });
    r.add("open_proxy_socket", [](const json& req) -> tokfence::Result<json> {
      // Read like the daemon's handler: an integer, range-checked in 64 bits (a float or an
      // out-of-range number converted to int is undefined behaviour; the fuzzer found
      // corpus/control_protocol/mode_beyond_int).
      std::int64_t mode = 0660;
      if (req.contains("mode")) {
        if (!req["mode"].is_number_integer() || req["mode"].get<std::int64_t>() < 0 || req["mode"].get<std::int64_t>() > 0777)
          return tokfence::fail("open_proxy_socket: 'mode' must be an integer permission between 0 and 0777");
        mode = req["mode"].get<std::int64_t>();
      }
      return json{{"path", req.at("path").get<std::string>()}, {"caller", req.value("caller", std::string())},
                  {"mode", mode}};
    });
    r.add("kill", [](const json& req) -> tokfence::Result<json> {
      if (!req.contains("provider")) return tokfence::fail("kill: provider missing");
      return json{{"killed", req["provider"]}};
    });
    return true;
  }();
  (void)filled;
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view line = tokfence::fuzz::as_text(data, size);
  json request = json::parse(line, nullptr, false);
  json reply = request.is_discarded() ? json{{"ok", false}, {"error", "control: malformed request: not JSON"}}
                                      : router().dispatch(request);
  FUZZ_CHECK(reply.is_object() && reply.contains("ok") && reply["ok"].is_boolean());
  (void)reply.dump(-1, ' ', false, json::error_handler_t::replace);
  return 0;
}
