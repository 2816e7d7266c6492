// The orchestrator of a load run: starts the workers, waits for every
// connection to open, then measures one window (or one request count) and
// samples the server's CPU time at exactly the window's edges.
#include "load.hpp"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <thread>
#include <vector>

namespace bench {

namespace {

void sleep_s(double s) { std::this_thread::sleep_for(std::chrono::duration<double>(s)); }

std::uint64_t sum_completed(const std::vector<std::unique_ptr<Progress>>& p) {
  std::uint64_t n = 0;
  for (const auto& x : p) n += x->completed.load(std::memory_order_relaxed);
  return n;
}

bool all_finished(const std::vector<std::unique_ptr<Progress>>& p) {
  for (const auto& x : p)
    if (!x->finished.load(std::memory_order_acquire)) return false;
  return true;
}

struct Sample {
  std::uint64_t t_ns = 0, completed = 0;
  double server_cpu = -1, client_cpu = 0;
  MachineCpu machine;
  ContextSwitches server_switches;
};

Sample sample(const LoadOptions& o, const std::vector<std::unique_ptr<Progress>>& p) {
  Sample s;
  s.t_ns = now_ns();
  s.completed = sum_completed(p);
  if (o.server_pid > 0) {
    if (auto c = process_cpu_seconds(o.server_pid)) s.server_cpu = *c;
    if (auto cs = process_context_switches(o.server_pid)) s.server_switches = *cs;
  }
  s.client_cpu = self_cpu_seconds();
  s.machine = machine_cpu();
  return s;
}

}  // namespace

int run_load(const LoadOptions& o) {
  const unsigned threads = std::max(1u, std::min(o.threads, o.connections));
  std::atomic<int> phase{o.requests > 0 ? kMeasure : kWarmup};
  std::vector<std::unique_ptr<Progress>> progress;
  std::vector<WorkerResult> results(threads);
  std::vector<std::thread> workers;
  for (unsigned t = 0; t < threads; ++t) progress.push_back(std::make_unique<Progress>());

  const std::uint64_t launched = now_ns();
  Sample start;
  if (o.requests > 0) start = sample(o, progress);  // count mode: the whole run is the window
  unsigned first = 0;
  for (unsigned t = 0; t < threads; ++t) {
    const unsigned count = o.connections / threads + (t < o.connections % threads ? 1 : 0);
    const std::uint64_t budget =
        o.requests == 0 ? 0 : o.requests / threads + (t < o.requests % threads ? 1 : 0);
    workers.emplace_back(run_worker, std::cref(o), first, count, budget, std::cref(phase),
                         std::ref(*progress[t]), std::ref(results[t]));
    first += count;
  }

  // Every connection opened (or failed) before the window starts.
  const std::uint64_t open_deadline =
      now_ns() + static_cast<std::uint64_t>(o.open_timeout_s * 1e9);
  for (;;) {
    std::uint64_t settled = 0;
    for (const auto& p : progress) settled += p->settled.load(std::memory_order_relaxed);
    if (settled >= o.connections || now_ns() > open_deadline || all_finished(progress)) break;
    sleep_s(0.005);
  }
  const double open_s = static_cast<double>(now_ns() - launched) / 1e9;

  Sample end;
  if (o.requests > 0) {
    while (!all_finished(progress)) sleep_s(0.001);
    end = sample(o, progress);
  } else {
    sleep_s(o.warmup_s);
    start = sample(o, progress);
    phase.store(kMeasure, std::memory_order_release);
    const std::uint64_t until = start.t_ns + static_cast<std::uint64_t>(o.duration_s * 1e9);
    // Bounded: ends at the deadline, or earlier if every worker gave up.
    while (now_ns() < until && !all_finished(progress)) sleep_s(0.002);
    end = sample(o, progress);
    phase.store(kStop, std::memory_order_release);
  }
  for (auto& w : workers) w.join();

  WorkerResult all;
  for (const WorkerResult& r : results) {
    all.latency.merge(r.latency);
    all.ok += r.ok;
    all.fail += r.fail;
    all.fail_release += r.fail_release;
    all.errors += r.errors;
    all.opened += r.opened;
    all.connect_failures += r.connect_failures;
    all.disconnects += r.disconnects;
    all.unanswered += r.unanswered;
    all.protocol_errors += r.protocol_errors;
    all.stalls += r.stalls;
    all.tls_failures += r.tls_failures;
    all.max_gap_ns = std::max(all.max_gap_ns, r.max_gap_ns);
  }
  const double window = static_cast<double>(end.t_ns - start.t_ns) / 1e9;
  const std::uint64_t done = end.completed - start.completed;
  const double rps = window > 0 ? static_cast<double>(done) / window : 0;
  const double server_cpu =
      (start.server_cpu >= 0 && end.server_cpu >= 0) ? end.server_cpu - start.server_cpu : -1;
  const double server_us = (server_cpu >= 0 && done > 0) ? server_cpu * 1e6 / static_cast<double>(done) : -1;
  const double client_cpu = end.client_cpu - start.client_cpu;
  const double client_us = done > 0 ? client_cpu * 1e6 / static_cast<double>(done) : -1;
  const Histogram& h = all.latency;
  // CPU that neither the server nor this tool used: other load on the
  // machine, which makes req/s and latency (not CPU per request) noisy.
  const double other_cpu = end.machine.busy_s - start.machine.busy_s - client_cpu -
                           (server_cpu >= 0 ? server_cpu : 0);
  const double other_pct = window > 0 ? 100.0 * std::max(0.0, other_cpu) / window : 0;
  const long sleeps = end.server_switches.voluntary - start.server_switches.voluntary;
  const long preempted = end.server_switches.involuntary - start.server_switches.involuntary;
  const double reqs_per_sleep = sleeps > 0 ? static_cast<double>(done) / static_cast<double>(sleeps) : 0;
  const double steal_pct =
      window > 0 ? 100.0 * (end.machine.steal_s - start.machine.steal_s) / window : 0;

  std::printf("target %s%s  workload %s (%s)  connections %u (opened %llu in %.2f s)  depth %u"
              "  threads %u\n",
              o.target.describe.c_str(), o.tls ? " (TLS)" : "", workload_name(o.workload),
              o.proto == Proto::Resp ? "resp" : "line", o.connections,
              static_cast<unsigned long long>(all.opened), open_s, o.depth, threads);
  std::printf("window %.3f s: %llu requests, %.0f req/s\n", window,
              static_cast<unsigned long long>(done), rps);
  std::printf("latency us: p50 %s  p99 %s  p999 %s  max %s  (%llu samples)\n",
              us(h.quantile(0.5)).c_str(), us(h.quantile(0.99)).c_str(),
              us(h.quantile(0.999)).c_str(), us(h.max()).c_str(),
              static_cast<unsigned long long>(h.total()));
  if (server_cpu >= 0)
    std::printf("server cpu %.3f s over the window: %.3f us/request (%.0f%% of one core)\n",
                server_cpu, server_us, window > 0 ? 100.0 * server_cpu / window : 0);
  if (o.server_pid > 0)
    std::printf("server slept %ld times (%.1f requests per wake-up), was preempted %ld times\n",
                sleeps, reqs_per_sleep, preempted);
  std::printf("client cpu %.3f s: %.3f us/request (%.0f%% of one core)\n", client_cpu, client_us,
              window > 0 ? 100.0 * client_cpu / window : 0);
  std::printf("other load on the machine: %.0f%% of one core busy, %.0f%% stolen by the host\n",
              other_pct, steal_pct);
  std::printf("answers ok %llu  fail %llu (take) %llu (release)  error %llu | connect failures %llu  disconnects %llu"
              "  unanswered %llu  protocol errors %llu | longest silence %.1f ms, %llu over 50 ms\n",
              static_cast<unsigned long long>(all.ok), static_cast<unsigned long long>(all.fail),
              static_cast<unsigned long long>(all.fail_release),
              static_cast<unsigned long long>(all.errors),
              static_cast<unsigned long long>(all.connect_failures),
              static_cast<unsigned long long>(all.disconnects),
              static_cast<unsigned long long>(all.unanswered),
              static_cast<unsigned long long>(all.protocol_errors),
              static_cast<double>(all.max_gap_ns) / 1e6,
              static_cast<unsigned long long>(all.stalls));
  std::printf("RESULT mode=load workload=%s proto=%s conns=%u opened=%llu depth=%u threads=%u "
              "window_s=%.3f requests=%llu rps=%.0f p50_us=%s p99_us=%s p999_us=%s max_us=%s "
              "server_cpu_s=%.3f server_us_per_req=%.4f client_us_per_req=%.4f ok=%llu fail=%llu "
              "fail_release=%llu "
              "errors=%llu connect_failures=%llu disconnects=%llu unanswered=%llu "
              "protocol_errors=%llu max_gap_ms=%.1f stalls=%llu other_cpu_pct=%.0f steal_pct=%.0f "
              "server_sleeps=%ld reqs_per_wakeup=%.1f server_preempted=%ld tls=%d tls_failures=%llu\n",
              workload_name(o.workload), o.proto == Proto::Resp ? "resp" : "line",
              o.connections, static_cast<unsigned long long>(all.opened), o.depth, threads,
              window, static_cast<unsigned long long>(done), rps, us(h.quantile(0.5)).c_str(),
              us(h.quantile(0.99)).c_str(), us(h.quantile(0.999)).c_str(), us(h.max()).c_str(),
              server_cpu, server_us, client_us, static_cast<unsigned long long>(all.ok),
              static_cast<unsigned long long>(all.fail),
              static_cast<unsigned long long>(all.fail_release),
              static_cast<unsigned long long>(all.errors),
              static_cast<unsigned long long>(all.connect_failures),
              static_cast<unsigned long long>(all.disconnects),
              static_cast<unsigned long long>(all.unanswered),
              static_cast<unsigned long long>(all.protocol_errors),
              static_cast<double>(all.max_gap_ns) / 1e6,
              static_cast<unsigned long long>(all.stalls), other_pct, steal_pct, sleeps,
              reqs_per_sleep, preempted, o.tls ? 1 : 0,
              static_cast<unsigned long long>(all.tls_failures));
  std::fflush(stdout);
  const bool broken = done == 0 || all.opened == 0;
  return broken ? 1 : 0;
}

}  // namespace bench
