// Ring: the io_uring instance and nothing about locks: setup with the best
// flags this kernel takes, the provided buffers for recv, submissions tagged
// with (operation, slot, generation), and completions handed out in batches.
#pragma once

#include <liburing.h>
#include <poll.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace glockd {

// What a submission was for; packed into user_data with slot + generation,
// so a late completion for a recycled slot is recognised by its generation.
enum class Op : std::uint8_t { Accept = 1, Recv, Send, Cancel, Close, Signal, Timer, Hangup };

struct Tag {
  Op op;
  std::uint32_t slot = kNoSlot;
  std::uint32_t gen = 0;  // only its low 24 bits travel

  static constexpr std::uint32_t kNoSlot = 0xffffffffu;
  std::uint64_t pack() const {
    return (static_cast<std::uint64_t>(op) << 56) |
           (static_cast<std::uint64_t>(gen & 0xffffff) << 32) | slot;
  }
  static Tag unpack(std::uint64_t data) {
    return Tag{static_cast<Op>(data >> 56), static_cast<std::uint32_t>(data),
               static_cast<std::uint32_t>(data >> 32) & 0xffffff};
  }
  bool same_gen(std::uint32_t g) const { return (g & 0xffffff) == gen; }
};

class Ring {
 public:
  Ring() = default;
  ~Ring();
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  // Sets up the ring and the recv buffers. On failure returns a message that
  // names the cause and the fix.
  std::string init();
  bool defer_taskrun() const;

  // Submissions. Inline: they run for every request of a client that
  // does not pipeline. Each is tagged after its prep (a prep may clear
  // user_data in some liburing versions).
  void accept(int fd, Tag tag) {
    prep(tag, [&](io_uring_sqe* s) {
      io_uring_prep_multishot_accept(s, fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    });
  }
  void recv(int fd, Tag tag) {  // multishot when the kernel has it
    prep(tag, [&](io_uring_sqe* s) {
      if (recv_multishot_) io_uring_prep_recv_multishot(s, fd, nullptr, 0, 0);
      else io_uring_prep_recv(s, fd, nullptr, kBufSize, 0);
      s->flags |= IOSQE_BUFFER_SELECT;
      s->buf_group = kBufGroup;
    });
  }
  void send(int fd, std::string_view bytes, Tag tag) {
    prep(tag, [&](io_uring_sqe* s) {
      io_uring_prep_send(s, fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    });
  }
  void cancel(Tag target, Tag tag) {
    prep(tag, [&](io_uring_sqe* s) { io_uring_prep_cancel64(s, target.pack(), 0); });
  }
  void poll_hangup(int fd, Tag tag) {  // FIN, RST or error
    prep(tag, [&](io_uring_sqe* s) {
      io_uring_prep_poll_add(s, fd, POLLRDHUP | POLLHUP | POLLERR);
    });
  }
  void close(int fd) {
    prep(Tag{Op::Close}, [&](io_uring_sqe* s) { io_uring_prep_close(s, fd); });
  }
  void read(int fd, void* into, std::size_t size, Tag tag) {
    prep(tag, [&](io_uring_sqe* s) {
      io_uring_prep_read(s, fd, into, static_cast<unsigned>(size), 0);
    });
  }
  void timeout(const __kernel_timespec* after, Tag tag) {
    prep(tag, [&](io_uring_sqe* s) {
      io_uring_prep_timeout(s, const_cast<__kernel_timespec*>(after), 0, 0);
    });
  }

  // A multishot recv answered EINVAL: this kernel (< 6.0) lacks it. Returns
  // true the first time, when the caller should re-arm in single-shot mode.
  bool fall_back_to_single_recv();

  // The bytes of a recv completion, if it carries a buffer; give_back()
  // returns the buffer (made visible to the kernel at end_turn()).
  std::string_view received(const io_uring_cqe& cqe) const {
    if (cqe.res <= 0 || !(cqe.flags & IORING_CQE_F_BUFFER)) return {};
    return {buffers_.get() + std::size_t{buffer_id(cqe)} * kBufSize,
            static_cast<std::size_t>(cqe.res)};
  }
  void give_back(const io_uring_cqe& cqe) {
    if (!(cqe.flags & IORING_CQE_F_BUFFER)) return;
    const std::uint16_t bid = buffer_id(cqe);
    io_uring_buf_ring_add(buf_ring_, buffers_.get() + std::size_t{bid} * kBufSize, kBufSize, bid,
                          io_uring_buf_ring_mask(kBufCount), static_cast<int>(buffers_returned_));
    ++buffers_returned_;
  }
  void end_turn();

  // Submits, then waits for one completion at most timeout_ns (< 0: no
  // bound). Returns 0 or a negative errno that is not a timeout or a signal.
  int wait(std::int64_t timeout_ns);
  void submit();

  // Hands every ready completion to handle(cqe), in batches; within a batch
  // accepts go first, so a connection the kernel accepted is known before
  // the requests of the same batch are answered.
  template <class Handle>
  void for_each_completion(Handle&& handle) {
    for (;;) {
      const unsigned n = io_uring_peek_batch_cqe(&ring_, batch_.data(), kBatch);
      if (n == 0) return;
      for (unsigned i = 0; i < n; ++i)
        if (Tag::unpack(batch_[i]->user_data).op == Op::Accept) handle(*batch_[i]);
      for (unsigned i = 0; i < n; ++i)
        if (Tag::unpack(batch_[i]->user_data).op != Op::Accept) handle(*batch_[i]);
      io_uring_cq_advance(&ring_, n);
      if (n < kBatch) return;
    }
  }

 private:
  static constexpr unsigned kBatch = 256;  // completions taken per peek
  static constexpr unsigned kBufCount = 1024;  // power of two (buffer ring)
  static constexpr unsigned kBufSize = 4096;
  static constexpr std::uint16_t kBufGroup = 0;
  static std::uint16_t buffer_id(const io_uring_cqe& cqe) {
    return static_cast<std::uint16_t>(cqe.flags >> IORING_CQE_BUFFER_SHIFT);
  }
  // Fills the next submission (a full queue is submitted first, so there is
  // always one) and tags it.
  template <class Prep>
  void prep(Tag tag, Prep&& fill) {
    io_uring_sqe* s = io_uring_get_sqe(&ring_);
    if (s == nullptr) s = sqe_after_submit();
    fill(s);
    io_uring_sqe_set_data64(s, tag.pack());
  }
  io_uring_sqe* sqe_after_submit();

  io_uring ring_{};
  bool ready_ = false;
  unsigned flags_ = 0;
  bool recv_multishot_ = true;
  // Provided buffer ring for recv: the kernel picks a buffer per completion,
  // so an idle connection owns no receive buffer at all.
  io_uring_buf_ring* buf_ring_ = nullptr;
  std::unique_ptr<char[]> buffers_;
  unsigned buffers_returned_ = 0;
  std::array<io_uring_cqe*, kBatch> batch_{};
};

}  // namespace glockd
