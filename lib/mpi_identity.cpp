// lib/mpi_identity.cpp: what lets a code address cross MPI ranks, and what
// proves that the ranks run the same build.
// Invariants:
//  - a code address is encoded as (module key, offset from the module's load
//    base). The key is a hash of the module's path as the dynamic loader
//    names it ("" for the executable), so it does not depend on the order in
//    which each rank happened to load its shared objects (Open MPI dlopens its
//    components as it goes); offsets agree because every rank maps the same
//    files (checked with build_fingerprint at start-up);
//  - the module table is read once and read again only when an address or
//    key is not in it (a library dlopened later).
#include <dlfcn.h>
#include <elf.h>
#include <link.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "mp/detail/mpi_core.hpp"
#include "mp/detail/pool_messages.hpp"
#include "mp/errors.hpp"

namespace mp::detail {
namespace {

constexpr int offset_bits = 40;  // modules up to 1 TiB; 24 bits of key
constexpr std::uint64_t offset_mask = (std::uint64_t{1} << offset_bits) - 1;

std::uint64_t module_key(const char* name) {
  std::uint32_t hash = 2166136261u;  // FNV-1a
  for (const char* c = name ? name : ""; *c; ++c) hash = (hash ^ static_cast<unsigned char>(*c)) * 16777619u;
  return hash & 0xffffffu;
}

struct Module {
  std::uint64_t key;
  std::uintptr_t base;            // the load bias: addresses are base + offset
  std::uintptr_t begin, end;      // the span of its loaded segments
  std::string build_id;
};

std::string build_id_of(const dl_phdr_info* info) {
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& segment = info->dlpi_phdr[i];
    if (segment.p_type != PT_NOTE) continue;
    const char* at = reinterpret_cast<const char*>(info->dlpi_addr + segment.p_vaddr);
    const char* end = at + segment.p_memsz;
    while (at + sizeof(ElfW(Nhdr)) <= end) {
      ElfW(Nhdr) note;
      std::memcpy(&note, at, sizeof note);
      const char* name = at + sizeof note;
      const char* desc = name + ((note.n_namesz + 3) & ~3u);
      if (note.n_type == NT_GNU_BUILD_ID && note.n_namesz == 4 && std::memcmp(name, "GNU", 4) == 0 &&
          desc + note.n_descsz <= end)
        return std::string(desc, note.n_descsz);
      at = desc + ((note.n_descsz + 3) & ~3u);
    }
  }
  return {};
}

std::vector<Module> read_modules() {
  std::vector<Module> modules;
  dl_iterate_phdr(
      [](dl_phdr_info* info, std::size_t, void* out) {
        Module module{module_key(info->dlpi_name), info->dlpi_addr, UINTPTR_MAX, 0,
                      build_id_of(info)};
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)& segment = info->dlpi_phdr[i];
          if (segment.p_type != PT_LOAD) continue;
          module.begin = std::min<std::uintptr_t>(module.begin, info->dlpi_addr + segment.p_vaddr);
          module.end = std::max<std::uintptr_t>(module.end,
                                                info->dlpi_addr + segment.p_vaddr + segment.p_memsz);
        }
        static_cast<std::vector<Module>*>(out)->push_back(std::move(module));
        return 0;
      },
      &modules);
  return modules;
}

class ModuleTable {
 public:
  // The module `find` accepts, reading the table again once if none does.
  template <class Find>
  const Module* lookup(Find find) {
    std::lock_guard lock(mutex_);
    for (int round = 0; round < 2; ++round) {
      auto it = std::find_if(modules_.begin(), modules_.end(), find);
      if (it != modules_.end()) return &*it;
      if (round == 0) modules_ = read_modules();
    }
    return nullptr;
  }

 private:
  std::mutex mutex_;
  std::vector<Module> modules_;
};

ModuleTable& modules() {
  static ModuleTable table;
  return table;
}

std::uint64_t encode(std::uintptr_t address) {
  const Module* module =
      modules().lookup([&](const Module& m) { return address >= m.begin && address < m.end; });
  if (!module)
    throw SerializationError("mpi::Pool: the code address " + std::to_string(address) +
                             " is in no loaded module, so it cannot be sent to another rank");
  return module->key << offset_bits | ((address - module->base) & offset_mask);
}

std::uintptr_t decode(std::uint64_t code) {
  const std::uint64_t key = code >> offset_bits;
  const Module* module = modules().lookup([&](const Module& m) { return m.key == key; });
  if (!module)
    throw SerializationError("mpi::Pool: a task names code in a module this rank has not loaded "
                             "(key " + std::to_string(key) + ")");
  return module->base + static_cast<std::uintptr_t>(code & offset_mask);
}

std::string padded_build_id(const void* address_inside) {
  auto address = reinterpret_cast<std::uintptr_t>(address_inside);
  const Module* module =
      modules().lookup([&](const Module& m) { return address >= m.begin && address < m.end; });
  std::string id = module ? module->build_id : std::string();
  id.resize(build_id_bytes, '\0');
  return id;
}

}  // namespace

const CodeAddressCodec module_offset_codec{&encode, &decode};

std::string build_fingerprint() {
  // The executable is the module named "", whatever its path.
  const Module* executable = modules().lookup([](const Module& m) { return m.key == module_key(""); });
  std::string fingerprint = executable ? executable->build_id : std::string();
  fingerprint.resize(build_id_bytes, '\0');
  fingerprint += padded_build_id(reinterpret_cast<const void*>(&begin_task));        // libmp
  fingerprint += padded_build_id(reinterpret_cast<const void*>(&build_fingerprint)); // libmp_mpi
  return fingerprint;
}

std::string describe_fingerprint(std::string_view fingerprint) {
  static constexpr const char* names[] = {"executable", "libmp", "libmp_mpi"};
  std::string text;
  for (std::size_t part = 0; part < 3; ++part) {
    std::string_view id = fingerprint.substr(part * build_id_bytes, build_id_bytes);
    while (!id.empty() && id.back() == '\0') id.remove_suffix(1);
    if (part) text += ", ";
    text.append(names[part]).append(" ");
    if (id.empty()) text += "(no build-id)";
    for (unsigned char byte : id) {
      static constexpr char hex[] = "0123456789abcdef";
      text += hex[byte >> 4];
      text += hex[byte & 15];
    }
  }
  return text;
}

}  // namespace mp::detail
