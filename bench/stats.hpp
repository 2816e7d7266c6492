// Measuring helpers of the load generator: a log-bucket latency histogram
// (HDR-like, ~3% precision), the monotonic clock, and what /proc tells
// about the server process (CPU ticks, resident memory).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <sys/types.h>

namespace bench {

std::uint64_t now_ns();

// Values in nanoseconds. 32 linear sub-buckets per power of two: every
// recorded value lands in a bucket at most 1/32 wide relative to it.
class Histogram {
 public:
  static constexpr unsigned kSubBits = 5;
  static constexpr unsigned kSub = 1u << kSubBits;
  static constexpr unsigned kBuckets = 64 * kSub;

  void record(std::uint64_t v) {
    ++counts_[index(v)];
    ++total_;
    if (v > max_) max_ = v;
  }
  void merge(const Histogram& other);
  std::uint64_t total() const { return total_; }
  std::uint64_t max() const { return max_; }
  // The value at quantile q (0..1): the middle of the bucket holding it.
  std::uint64_t quantile(double q) const;

  static unsigned index(std::uint64_t v) {
    if (v < kSub) return static_cast<unsigned>(v);
    const unsigned e = 63u - static_cast<unsigned>(__builtin_clzll(v));
    const unsigned mantissa = static_cast<unsigned>(v >> (e - kSubBits));  // in [32, 64)
    return (e - kSubBits + 1) * kSub + (mantissa - kSub);
  }
  static std::uint64_t lower_bound(unsigned idx);
  static std::uint64_t width(unsigned idx);

 private:
  std::array<std::uint64_t, kBuckets> counts_{};
  std::uint64_t total_ = 0;
  std::uint64_t max_ = 0;
};

// utime + stime of a whole process (all its threads), in seconds.
std::optional<double> process_cpu_seconds(pid_t pid);
// Context switches of a process's main thread: voluntary ones are the
// times it blocked waiting for work (loop turns that slept), involuntary
// ones the times the scheduler took the CPU from it (other load).
struct ContextSwitches {
  long voluntary = 0;
  long involuntary = 0;
};
std::optional<ContextSwitches> process_context_switches(pid_t pid);
// VmRSS of a process in KiB.
std::optional<long> process_rss_kib(pid_t pid);
// Machine-wide CPU time from /proc/stat: busy (user, nice, system, irq,
// softirq) and stolen by the hypervisor, in seconds summed over all CPUs.
struct MachineCpu {
  double busy_s = 0;
  double steal_s = 0;
};
MachineCpu machine_cpu();
// This process's own CPU time (user + system), in seconds.
double self_cpu_seconds();

// Formats a duration in ns as microseconds with two decimals.
std::string us(std::uint64_t ns);

}  // namespace bench
