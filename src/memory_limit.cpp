// default_max_memory: cgroup v2 memory.max up the hierarchy, else sysconf.
#include "memory_limit.hpp"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>
#include <vector>

namespace glockd {

namespace {

constexpr std::size_t kFloor = 64 * 1024 * 1024;

std::string read_first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// "0::/system.slice/glockd.service" (cgroup v2) -> the path; empty if v1.
std::string own_cgroup() {
  std::ifstream in("/proc/self/cgroup");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("0::", 0) == 0) return line.substr(3);
  return {};
}

}  // namespace

MemoryLimit max_memory_from(const std::string* cgroup_maxes, std::size_t count,
                            std::size_t physical) {
  std::size_t cgroup = 0;
  for (std::size_t i = 0; i < count; ++i) {
    std::size_t v = 0;
    const std::string& t = cgroup_maxes[i];
    const auto [end, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
    if (ec != std::errc() || end != t.data() + t.size() || v == 0) continue;  // "max", unreadable
    cgroup = cgroup == 0 ? v : std::min(cgroup, v);
  }
  MemoryLimit m;
  const std::size_t base = cgroup != 0 ? std::min(cgroup, physical == 0 ? cgroup : physical)
                                       : physical;
  m.source = cgroup != 0 && (physical == 0 || cgroup <= physical)
                 ? "a quarter of the cgroup's memory.max (" + std::to_string(cgroup) + " bytes)"
                 : "a quarter of physical memory (" + std::to_string(physical) + " bytes)";
  m.bytes = std::max(kFloor, base / 4);
  if (m.bytes == kFloor) m.source += ", raised to the 64 MiB floor";
  return m;
}

MemoryLimit default_max_memory() {
  std::vector<std::string> maxes;
  std::string path = own_cgroup();
  // memory.max of the process's own cgroup and of each parent: the
  // tightest applies. The root has no memory.max.
  while (!path.empty() && path != "/") {
    maxes.push_back(read_first_line("/sys/fs/cgroup" + path + "/memory.max"));
    path = path.substr(0, path.rfind('/'));
  }
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page = ::sysconf(_SC_PAGESIZE);
  const std::size_t physical =
      pages > 0 && page > 0 ? static_cast<std::size_t>(pages) * static_cast<std::size_t>(page) : 0;
  return max_memory_from(maxes.data(), maxes.size(), physical);
}

}  // namespace glockd
