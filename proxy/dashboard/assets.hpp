#pragma once
// The dashboard's pages, script and style sheet, embedded into the binary at build time
// (embed_assets.cmake writes the table from proxy/dashboard/assets/): nothing is fetched from the
// network or read from disk at run time.
#include <cstddef>
#include <string_view>

namespace tokfence::proxy {

struct DashboardAsset {
  const char* name;  // file name under assets/, e.g. "app.js"
  const char* type;  // Content-Type
  const unsigned char* data;
  std::size_t size;
  std::string_view text() const { return {reinterpret_cast<const char*>(data), size}; }
};

// The asset called `name`, or nullptr.
const DashboardAsset* find_dashboard_asset(std::string_view name);

}  // namespace tokfence::proxy
