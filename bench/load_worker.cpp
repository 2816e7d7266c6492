// The plain worker (load_worker.hpp): Worker<false>, and the entry point
// that picks the plain or the TLS one.
#include "load_worker.hpp"

namespace bench {

void run_worker(const LoadOptions& o, unsigned first, unsigned count, std::uint64_t budget,
                const std::atomic<int>& phase, Progress& progress, WorkerResult& result) {
  if (o.tls != nullptr) return run_worker_tls(o, first, count, budget, phase, progress, result);
  Worker<false> w(o, first, count, budget, phase, progress, result);
  w.run();
}

}  // namespace bench
