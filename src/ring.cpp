// Ring implementation: setup (flags, probe, buffer ring), submissions and
// waiting, after liburing's examples/proxy.c.
#include "ring.hpp"

#include <sys/mman.h>

#include <cassert>
#include <cerrno>
#include <cstring>
#include <fstream>

namespace glockd {

namespace {

constexpr unsigned kSqEntries = 4096;
// Large enough that a burst of accepts and recvs never overflows it.
constexpr unsigned kCqEntries = 65536;

std::string read_sysctl(const char* path) {
  std::ifstream f(path);
  std::string v;
  if (f) std::getline(f, v);
  return v;
}

std::string explain_ring_error(int err) {
  const std::string why = std::strerror(err);
  if (err == ENOSYS)
    return "io_uring is not available (io_uring_setup: " + why +
           "): the kernel lacks it or a seccomp filter hides it. glockd needs Linux 5.19 or "
           "later with io_uring enabled; in a container, allow io_uring_setup, "
           "io_uring_enter and io_uring_register in its seccomp profile";
  if (err == EPERM) {
    const std::string disabled = read_sysctl("/proc/sys/kernel/io_uring_disabled");
    if (!disabled.empty() && disabled != "0")
      return "io_uring is disabled by the sysctl kernel.io_uring_disabled=" + disabled +
             ": set it to 0 (sysctl -w kernel.io_uring_disabled=0), or for value 1 run "
             "glockd in the group named by kernel.io_uring_group";
    return "io_uring is refused (io_uring_setup: " + why +
           "): a seccomp filter blocks it (container default profiles do); allow "
           "io_uring_setup, io_uring_enter and io_uring_register";
  }
  if (err == ENOMEM)
    return "not enough locked memory for the io_uring ring (io_uring_setup: " + why +
           "): raise RLIMIT_MEMLOCK (ulimit -l, or LimitMEMLOCK= in the systemd unit)";
  return "cannot set up io_uring: " + why;
}

}  // namespace

Ring::~Ring() {
  if (ready_) io_uring_queue_exit(&ring_);
  if (buf_ring_) ::munmap(buf_ring_, kBufCount * sizeof(io_uring_buf));
}

std::string Ring::init() {
  io_uring_params p{};
  // SINGLE_ISSUER + DEFER_TASKRUN: only this thread submits, and completion
  // work runs when we ask for events instead of interrupting us (6.1+).
  // COOP_TASKRUN is the next best (5.19+). CQSIZE: never overflow the CQ.
  const unsigned base = IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
  const unsigned tries[] = {base | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
                            base | IORING_SETUP_COOP_TASKRUN, base};
  int rc = -EINVAL;
  for (unsigned flags : tries) {
    p = io_uring_params{};
    p.flags = flags;
    p.cq_entries = kCqEntries;
    rc = io_uring_queue_init_params(kSqEntries, &ring_, &p);
    if (rc != -EINVAL) {
      flags_ = flags;
      break;
    }
  }
  if (rc < 0) return explain_ring_error(-rc);
  ready_ = true;

  io_uring_probe* probe = io_uring_get_probe_ring(&ring_);
  const bool has_ops = probe && io_uring_opcode_supported(probe, IORING_OP_ACCEPT) &&
                       io_uring_opcode_supported(probe, IORING_OP_RECV) &&
                       io_uring_opcode_supported(probe, IORING_OP_SEND) &&
                       io_uring_opcode_supported(probe, IORING_OP_ASYNC_CANCEL) &&
                       io_uring_opcode_supported(probe, IORING_OP_CLOSE);
  if (probe) io_uring_free_probe(probe);
  if (!has_ops)
    return "this kernel's io_uring lacks accept/recv/send/close: glockd needs Linux 5.19 or later";

  // Liburing 2.3 has no io_uring_setup_buf_ring(): map and register by hand.
  const std::size_t ring_bytes = kBufCount * sizeof(io_uring_buf);
  void* mem = ::mmap(nullptr, ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE,
                     -1, 0);
  if (mem == MAP_FAILED) return std::string("cannot map the buffer ring: ") + std::strerror(errno);
  buf_ring_ = static_cast<io_uring_buf_ring*>(mem);
  io_uring_buf_ring_init(buf_ring_);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<std::uint64_t>(mem);
  reg.ring_entries = kBufCount;
  reg.bgid = kBufGroup;
  if (int r = io_uring_register_buf_ring(&ring_, &reg, 0); r < 0)
    return std::string("cannot register the recv buffer ring (") + std::strerror(-r) +
           "): glockd needs Linux 5.19 or later";
  buffers_ = std::make_unique<char[]>(std::size_t{kBufCount} * kBufSize);
  for (unsigned i = 0; i < kBufCount; ++i)
    io_uring_buf_ring_add(buf_ring_, buffers_.get() + std::size_t{i} * kBufSize, kBufSize,
                          static_cast<unsigned short>(i), io_uring_buf_ring_mask(kBufCount),
                          static_cast<int>(i));
  io_uring_buf_ring_advance(buf_ring_, kBufCount);
  return {};
}

bool Ring::defer_taskrun() const { return (flags_ & IORING_SETUP_DEFER_TASKRUN) != 0; }

io_uring_sqe* Ring::sqe_after_submit() {
  io_uring_submit(&ring_);
  io_uring_sqe* s = io_uring_get_sqe(&ring_);
  assert(s != nullptr);
  return s;
}

bool Ring::fall_back_to_single_recv() {
  if (!recv_multishot_) return false;
  recv_multishot_ = false;
  return true;
}

void Ring::end_turn() {
  if (buffers_returned_ == 0) return;
  io_uring_buf_ring_advance(buf_ring_, static_cast<int>(buffers_returned_));
  buffers_returned_ = 0;
}

int Ring::wait(std::int64_t timeout_ns) {
  int rc;
  if (timeout_ns < 0) {
    rc = io_uring_submit_and_wait(&ring_, 1);
  } else {
    __kernel_timespec ts{timeout_ns / 1'000'000'000, timeout_ns % 1'000'000'000};
    io_uring_cqe* cqe = nullptr;
    rc = io_uring_submit_and_wait_timeout(&ring_, &cqe, 1, &ts, nullptr);
  }
  if (rc == -ETIME || rc == -EINTR || rc == -EAGAIN || rc == -EBUSY) return 0;
  return rc < 0 ? rc : 0;
}

void Ring::submit() { io_uring_submit(&ring_); }

}  // namespace glockd
