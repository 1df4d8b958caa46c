// Regression mode for the fuzz targets: built without libFuzzer (the normal g++ build), each
// target's LLVMFuzzerTestOneInput is linked with this main, which feeds it every file of the
// corpus directories named on the command line. ctest runs it as "fuzz-regression: <target>", so
// every seed and every crash input once saved to tests/fuzz/corpus/<target>/ keeps being checked.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  std::size_t inputs = 0;
  for (int i = 1; i < argc; ++i) {
    std::error_code ec;
    if (!fs::is_directory(argv[i], ec)) {
      std::fprintf(stderr, "fuzz-regression: error: not a corpus directory: %s\n", argv[i]);
      return 2;
    }
    std::vector<fs::path> files;
    for (const auto& entry : fs::recursive_directory_iterator(argv[i]))
      if (entry.is_regular_file()) files.push_back(entry.path());
    std::sort(files.begin(), files.end());
    for (const auto& path : files) {
      std::ifstream in(path, std::ios::binary);
      std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      std::fprintf(stderr, "fuzz-regression: %s\n", path.c_str());
      LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
      ++inputs;
    }
  }
  if (inputs == 0) {
    std::fprintf(stderr, "fuzz-regression: error: the corpus is empty\n");
    return 2;
  }
  std::fprintf(stderr, "fuzz-regression: %zu inputs, no crash\n", inputs);
  return 0;
}
