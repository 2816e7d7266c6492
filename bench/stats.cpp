// Histogram arithmetic and the /proc readers of the load generator.
#include "stats.hpp"

#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace bench {

std::uint64_t now_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000ull +
         static_cast<std::uint64_t>(ts.tv_nsec);
}

void Histogram::merge(const Histogram& other) {
  for (unsigned i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  total_ += other.total_;
  if (other.max_ > max_) max_ = other.max_;
}

std::uint64_t Histogram::lower_bound(unsigned idx) {
  if (idx < kSub) return idx;
  const unsigned e = idx / kSub + kSubBits - 1;
  const std::uint64_t mantissa = idx % kSub + kSub;
  return mantissa << (e - kSubBits);
}

std::uint64_t Histogram::width(unsigned idx) {
  if (idx < kSub) return 1;
  const unsigned e = idx / kSub + kSubBits - 1;
  return std::uint64_t{1} << (e - kSubBits);
}

std::uint64_t Histogram::quantile(double q) const {
  if (total_ == 0) return 0;
  auto target = static_cast<std::uint64_t>(std::ceil(q * static_cast<double>(total_)));
  if (target == 0) target = 1;
  std::uint64_t seen = 0;
  for (unsigned i = 0; i < kBuckets; ++i) {
    seen += counts_[i];
    if (seen >= target) {
      const std::uint64_t mid = lower_bound(i) + width(i) / 2;
      return mid < max_ ? mid : max_;
    }
  }
  return max_;
}

std::optional<double> process_cpu_seconds(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!f || !std::getline(f, line)) return std::nullopt;
  // The command name may hold spaces and parentheses: fields start after the last ')'.
  const auto close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  // Field 3 (state) is the first token; utime is field 14, stime field 15.
  for (int n = 3; n <= 15 && (rest >> field); ++n) {
    if (n == 14) utime = std::stoull(field);
    if (n == 15) stime = std::stoull(field);
  }
  const long ticks = ::sysconf(_SC_CLK_TCK);
  return static_cast<double>(utime + stime) / static_cast<double>(ticks > 0 ? ticks : 100);
}

std::optional<long> process_rss_kib(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (f && std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
  }
  return std::nullopt;
}

MachineCpu machine_cpu() {
  std::ifstream f("/proc/stat");
  std::string cpu;
  unsigned long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0,
                     steal = 0;
  f >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
  const long ticks = ::sysconf(_SC_CLK_TCK);
  const double t = static_cast<double>(ticks > 0 ? ticks : 100);
  MachineCpu m;
  m.busy_s = static_cast<double>(user + nice + system + irq + softirq) / t;
  m.steal_s = static_cast<double>(steal) / t;
  return m;
}

std::optional<ContextSwitches> process_context_switches(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  ContextSwitches cs;
  int found = 0;
  while (f && std::getline(f, line)) {
    if (line.rfind("voluntary_ctxt_switches:", 0) == 0) {
      cs.voluntary = std::stol(line.substr(24));
      ++found;
    } else if (line.rfind("nonvoluntary_ctxt_switches:", 0) == 0) {
      cs.involuntary = std::stol(line.substr(27));
      ++found;
    }
  }
  if (found != 2) return std::nullopt;
  return cs;
}

double self_cpu_seconds() {
  rusage ru{};
  ::getrusage(RUSAGE_SELF, &ru);
  auto secs = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  return secs(ru.ru_utime) + secs(ru.ru_stime);
}

std::string us(std::uint64_t ns) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", static_cast<double>(ns) / 1000.0);
  return buf;
}

}  // namespace bench
