// Loop: the io_uring ring and the one completion-queue loop that drives
// accept, recv, send and close for every listener and connection.
#pragma once

#include <liburing.h>
#include <signal.h>
#include <sys/signalfd.h>

#include <array>
#include <functional>
#include <cstdint>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "config.hpp"
#include "connection.hpp"
#include "listeners.hpp"
#include "lock_table.hpp"
#include "http.hpp"
#include "log.hpp"
#include "protocol.hpp"
#include "registry.hpp"
#include "token_mark.hpp"

namespace glockd {

// Blocks SIGTERM, SIGINT, SIGQUIT and SIGHUP so they queue for the loop's
// signalfd, and ignores the signals that would otherwise end or stop the
// daemon for nothing; call it before opening listeners so an early signal
// is not fatal. Returns the blocked set.
sigset_t take_over_signals();

class Loop final : public ServerView {
 public:
  // token_mark: the started --state-dir mark, or null (tokens from the clock).
  Loop(const Config& config, std::vector<Listener> listeners, TokenMark* token_mark);
  ~Loop() override;
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  // Sets up the ring, the buffer pool and the signal fd. On failure returns
  // a message that names the cause and the fix.
  std::string init();
  // Serves until SIGTERM, SIGINT or SIGQUIT; returns the process exit status.
  int run();

  // ServerView
  std::string_view addr(ConnId conn) const override;
  std::size_t connections_now() override;
  std::string new_token() override;
  Session* detached(ConnId conn) override;
  void forget_detached(ConnId conn) override;

  // Called once the loop is serving (readiness notification).
  void on_ready(std::function<void()> f) { on_ready_ = std::move(f); }

 private:
  // What a submission was for; packed into user_data with slot + generation.
  enum class Op : std::uint8_t { Accept = 1, Recv, Send, Cancel, Close, Signal, Timer, Hangup };

  static std::uint64_t tag(Op op, std::uint32_t slot, std::uint32_t gen);

  io_uring_sqe* sqe();
  void arm_accept(std::size_t listener);
  void arm_recv(Connection& c);
  void cancel(Connection& c, Op op);
  void pause_reading(Connection& c);
  void refuse_queued_input(Connection& c);
  void log_refusal(const Connection& c, Refusal why);
  std::size_t pending_limit(const Connection& c) const;
  void arm_hangup_watch(Connection& c);
  void arm_signal();
  void arm_retry_timer();
  void submit_send(Connection& c);

  void handle_cqe(const io_uring_cqe& cqe);
  void on_accept(std::size_t listener, const io_uring_cqe& cqe);
  void on_recv(Connection& c, const io_uring_cqe& cqe);
  void on_send(Connection& c, const io_uring_cqe& cqe);
  void on_hangup(Connection& c, const io_uring_cqe& cqe);
  void on_signal(const io_uring_cqe& cqe);

  void adopt(int fd, Transport transport);
  void consume(Connection& c, std::string_view bytes);
  void consume_lines(Connection& c, std::string_view text);
  void frame_answer(Connection& c);
  void consume_ws(Connection& c, std::string_view bytes);
  void on_ws_message(Connection& c, std::string_view payload);
  void route_http(Connection& c, const http::Request& request);
  void http_reply(Connection& c, std::string response, const char* why);
  void http_timeout(Connection& c);
  std::string metrics_text();
  void queue_flush(Connection& c);
  void block(Connection& c, std::uint32_t wait_ms);
  void unblock(Connection& c);
  void answer_grants();
  void expire_detached(Connection& c);
  void expire_waits();
  void resume_pipelines();
  void maybe_resume_reading(Connection& c);
  void terminate(Connection& c, const char* why, bool flush = false);
  void flush_closing(Connection& c);
  void maybe_close(Connection& c);
  void end_drain(Connection& c);
  void on_closing_recv(Connection& c, int res);
  void drain_timeout(Connection& c);
  void end_of_turn();
  void return_buffer(std::uint16_t bid);
  void begin_shutdown();
  bool accepts_armed() const;
  void warn_limited(RateLimit& limit, const std::string& message);

  const Config& config_;
  std::vector<Listener> listeners_;
  std::vector<bool> accept_armed_;
  bool accept_retry_pending_ = false;

  io_uring ring_{};
  bool ring_ready_ = false;
  bool recv_multishot_ = true;   // off on kernels without multishot recv
  unsigned ring_flags_ = 0;

  // Provided buffer ring for recv: the kernel picks a buffer per completion,
  // so an idle connection owns no receive buffer at all.
  io_uring_buf_ring* buf_ring_ = nullptr;
  std::unique_ptr<char[]> buffers_;
  unsigned buffers_returned_ = 0;

  UniqueFd signal_fd_;
  signalfd_siginfo siginfo_{};
  __kernel_timespec retry_delay_{};

  TokenMark* token_mark_;
  LockTable table_;
  Registry registry_;
  Stats stats_;
  std::unique_ptr<Events> events_;
  std::unique_ptr<Protocol> protocol_;
  ConnectionTable conns_;
  std::array<std::size_t, kTransportCount> open_by_transport_{};
  std::size_t open_ = 0;
  std::size_t max_connections_ = 0;
  std::uint64_t unix_counter_ = 0;
  std::vector<ConnId> flush_queue_;
  std::vector<ConnId> rearm_queue_;
  std::vector<ConnId> resume_queue_;  // unblocked, with requests waiting
  std::set<std::pair<std::int64_t, ConnId>> timers_;  // wait deadlines

  std::string scratch_;  // a websocket answer before it is framed
  std::uint64_t bytes_in_ = 0;
  std::uint64_t bytes_out_ = 0;
  std::uint64_t accepted_ = 0;
  std::size_t detached_ = 0;
  std::int64_t started_ns_ = 0;

  bool stopping_ = false;
  std::int64_t shutdown_deadline_ns_ = 0;
  std::function<void()> on_ready_;

  RateLimit overlong_limit_;
  RateLimit full_limit_;
  RateLimit accept_error_limit_;
  RateLimit origin_limit_;
  RateLimit http_limit_;
  RateLimit refusal_limit_;
  RateLimit queue_limit_;
  RateLimit drain_limit_;
  RateLimit sighup_limit_{std::chrono::seconds(1)};
  std::uint64_t drain_timeouts_ = 0;
  std::uint64_t queue_overflows_ = 0;  // connections closed by refuse_queued_input()
  std::size_t max_sessions_ = 0;
  int random_errno_ = 0;  // why the last new_token() failed
};

}  // namespace glockd
