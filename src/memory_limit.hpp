// The default of --max-memory: a quarter of the memory the daemon may use.
#pragma once

#include <cstddef>
#include <string>

namespace glockd {

struct MemoryLimit {
  std::size_t bytes = 0;
  std::string source;  // where the figure came from, for the start-up log
};

// The tightest memory.max of this process's cgroup and its parents (cgroup
// v2), else physical memory; a quarter of it, at least 64 MiB. Physical
// memory comes from sysconf, not /proc/meminfo, which the packaged unit's
// ProcSubset=pid hides.
MemoryLimit default_max_memory();

// The same from given inputs (tests): memory.max texts of the cgroup chain
// ("max" or bytes) and physical memory in bytes.
MemoryLimit max_memory_from(const std::string* cgroup_maxes, std::size_t count,
                            std::size_t physical);

}  // namespace glockd
