// Replays every input kept under fuzz/regressions/<target>/ through a fuzz
// target built with the ordinary compiler, so that each finding stays a
// regression test of `make test` (and of the sanitizer run in CI).
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <directory of inputs>\n", argv[0]);
    return 2;
  }
  int replayed = 0;
  for (const auto& entry : std::filesystem::directory_iterator(argv[1])) {
    std::ifstream in(entry.path(), std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    LLVMFuzzerTestOneInput(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
    std::printf("replayed %s (%zu bytes)\n", entry.path().filename().c_str(), bytes.size());
    ++replayed;
  }
  std::printf("%d inputs replayed without a crash\n", replayed);
  return replayed > 0 ? 0 : 1;
}
