// Loop: the one completion-queue loop. It drives each Connection through
// its states with the Ring's operations, hands requests to the LineHandler
// (the Protocol) and acts on what comes back, in one place.
#pragma once

#include <signal.h>
#include <sys/signalfd.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "budget.hpp"
#include "config.hpp"
#include "connection.hpp"
#include "listeners.hpp"
#include "loop_internal.hpp"
#include "lock_table.hpp"
#include "log.hpp"
#include "protocol.hpp"
#include "registry.hpp"
#include "ring.hpp"
#include "tls.hpp"
#include "token_mark.hpp"

namespace glockd {

// Blocks SIGTERM, SIGINT, SIGQUIT and SIGHUP so they queue for the loop's
// signalfd, and ignores the signals that would otherwise end or stop the
// daemon for nothing; call it before opening listeners so an early signal
// is not fatal. Returns the blocked set.
sigset_t take_over_signals();

// The TLS contexts of the TCP port (--ssl) and of the websocket port
// (--ws-ssl); null where that port is plain.
struct TlsContexts {
  std::unique_ptr<tls::Context> tcp;
  std::unique_ptr<tls::Context> ws;
};
// Loads what the config names; on failure the error names the flag, the
// file and the problem, and `out` is unchanged.
std::string load_tls(const Config& config, TlsContexts& out);

class Loop final {
 public:
  // token_mark: the started --state-dir mark, or null (tokens from the clock).
  // handler: where request lines go; null for the Protocol (the benchmark's
  // echo ceiling passes its own).
  Loop(const Config& config, std::vector<Listener> listeners, TokenMark* token_mark,
       LineHandler* handler = nullptr);
  ~Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  // Sets up the ring and the signal fd. On failure returns a message that
  // names the cause and the fix.
  std::string init();
  // Serves until SIGTERM, SIGINT or SIGQUIT; returns the process exit status.
  int run();
  // TLS for the ports that have it (before run()).
  void use_tls(TlsContexts contexts) { tls_ = std::move(contexts); }
  // Called once the loop is serving (readiness notification).
  void on_ready(std::function<void()> f) { on_ready_ = std::move(f); }

 private:
  class Sink;  // FramingSink for one connection (loop_requests.cpp)

  // loop.cpp: the dispatch, ring operations with their in-flight counts,
  // deadlines, the end of a turn.
  void handle_cqe(const io_uring_cqe& cqe);
  void on_recv(Connection& c, const io_uring_cqe& cqe);
  void on_send(Connection& c, const io_uring_cqe& cqe);
  void on_hangup(Connection& c, const io_uring_cqe& cqe);
  void arm_recv(Connection& c);
  void arm_hangup(Connection& c);
  void cancel(Connection& c, Op op);
  void send_rest(Connection& c);
  void queue_flush(Connection& c);
  void arm_deadline(Connection& c, Deadline d, std::int64_t at_ns);
  void disarm_deadline(Connection& c, Deadline d);
  void expire_deadlines();
  void on_deadline(Connection& c, Deadline d);
  void end_of_turn();
  void warn_limited(RateLimit& limit, const std::string& message);

  // loop_accept.cpp
  void arm_accept(std::size_t listener);
  void arm_retry_timer();
  void on_accept(std::size_t listener, const io_uring_cqe& cqe);
  void on_retry_timer();
  void adopt(int fd, Transport transport);
  void take_pending_accepts();

  // loop_requests.cpp: bytes to requests to outcomes.
  void on_input(Connection& c, std::string_view wire) {
    if (c.stream().shared()) on_bytes(c, wire);  // a plain socket: no call per read
    else tls_input(c, wire);
  }
  void on_bytes(Connection& c, std::string_view bytes);
  void framing_deadline(Connection& c);
  void framing_deadline_update(Connection& c);
  void take_requests(Connection& c, std::string_view text);
  void consume_lines(Connection& c, std::string_view text);
  bool handle_request(Connection& c, std::string_view line);
  // Every Outcome of the protocol goes through here: what it asks for, then
  // the answers to the waiters its releases granted, in the order made.
  void apply(Connection& c, const Outcome& outcome) {
    if (outcome.needs_action()) act(c, outcome);
    if (!table_.grants().empty()) settle();
  }
  void act(Connection& c, const Outcome& outcome);
  void settle();
  void after_input(Connection& c);
  void block(Connection& c, std::uint32_t wait_ms);
  void wait_ended(Connection& c);
  void throttle(Connection& c);
  // Every cause of its pause at half its bound: reading resumes.
  void maybe_unthrottle(Connection& c) {
    if (c.state() == Connection::State::Throttled) unthrottle_if_caught_up(c);
  }
  void unthrottle_if_caught_up(Connection& c);
  void refuse_queued_input(Connection& c, std::size_t limit);
  // The peer is leaving: what it sent before is served now, whatever the
  // turn's budget (it is bounded by the read-ahead), unless a wait is on.
  void serve_queued_now(Connection& c);
  std::size_t pending_limit(const Connection& c) const;
  void resume_pipelines();
  void log_refusal(const Connection& c, const Outcome& outcome);

  // loop_fair.cpp: fair turns and the memory budget.
  // May c's queued requests be served now (state, output, memory)?
  bool may_serve(const Connection& c) const {
    // A connection paused at the memory budget is still served while its
    // answers are read (serving its queue frees memory), not past the floor.
    return c.serves_requests() && !c.inspection_retry &&
           c.unsent() <= (c.memory_paused ? pause_floor() : max_out_);
  }
  std::size_t pause_floor() const {
    return std::clamp(budget_.limit() / (8 * std::max<std::size_t>(open_, 1)),
                      loop_detail::kPauseFloorMin, loop_detail::kPauseFloorMax);
  }
  // Queue c to have its pending requests served (this turn, or the next).
  void schedule(Connection& c) {
    if (!c.pending_input.empty() && !c.in_backlog && may_serve(c)) enter_backlog(c);
  }
  void enter_backlog(Connection& c);
  // Starts a turn's phase of work: its time slice and per-connection budgets.
  void begin_phase();
  bool turn_overdue();
  // Reports c's buffers to the memory budget; pauses c if it is full.
  // Inline: this runs after every read and send; the sum of a few buffer
  // sizes is all it costs unless they changed or the budget is full (a
  // websocket frame's room is taken when it starts, so a connection filling
  // it changes no size and must still be paused).
  void account(Connection& c) {
    const std::size_t now = c.buffered();
    if (now != c.accounted || budget_.full()) reaccount(c, now);
    // An inspector whose answer has mostly gone lets the next one be made.
    if (budget_.inspector() == c.session.id && c.unsent() <= pause_floor())
      budget_.inspection_done(c.session.id);
  }
  void reaccount(Connection& c, std::size_t now);
  bool hold_line(Connection& c, std::string_view line);
  void release_memory_holds();
  void release_buffers(Connection& c);
  // Gives freed memory back when due; else when it will be due (or -1).
  std::int64_t maybe_trim();

  // loop_http.cpp: the HTTP endpoints of the websocket port.
  std::string http_response(const http::Request& request);
  std::string metrics_text();

  // loop_tls.cpp: TLS connections' handshakes (CPU bounded per turn, and
  // in time), failures, and certificates reloaded on SIGHUP.
  // The stream for a new connection; null when it is refused (logged).
  ByteStream* tls_stream(const std::string& addr, Transport transport);
  void tls_input(Connection& c, std::string_view wire);
  void tls_step(Connection& c, std::string_view wire);
  void handshake_done(Connection& c);
  void tls_failed(Connection& c);
  void handshake_timeout(Connection& c);
  void serve_deferred_handshakes();
  void reload_tls(std::uint32_t pid);

  // loop_close.cpp: the end of connections and of the loop.
  void on_signal(const io_uring_cqe& cqe);
  void arm_signal();
  void begin_shutdown();
  void terminate(Connection& c, const char* why, bool deliver_answers = false);
  void drain_step(Connection& c);
  void on_draining_recv(Connection& c, int res);
  void end_drain(Connection& c);
  void drain_timeout(Connection& c);
  void maybe_close(Connection& c);
  void expire_kept(Connection& c);
  void forget_kept(Connection& c);
  void free_slot(Connection& c);
  bool accepts_armed() const;

  const Config& config_;
  std::vector<Listener> listeners_;
  std::vector<bool> accept_armed_;
  bool accept_retry_pending_ = false;
  __kernel_timespec retry_delay_{};

  Ring ring_;
  UniqueFd signal_fd_;
  signalfd_siginfo siginfo_{};

  TokenMark* token_mark_;
  std::string start_error_;  // set while constructing table_; init() reports it
  LockTable table_;
  Registry registry_;
  Stats stats_;
  std::unique_ptr<Events> events_;
  std::unique_ptr<Protocol> protocol_;
  LineHandler* handler_;
  ConnectionTable conns_;
  std::array<std::size_t, kTransportCount> open_by_transport_{};
  std::size_t open_ = 0;
  std::size_t max_connections_ = 0;
  std::size_t max_sessions_ = 0;
  std::uint64_t unix_counter_ = 0;
  std::vector<ConnId> flush_queue_;
  std::vector<ConnId> rearm_queue_;
  // Connections with queued requests they may be served, in arrival order
  // (fair turns: each gets a budget per turn; the rest waits its turn).
  std::vector<ConnId> backlog_;
  std::vector<ConnId> memory_held_;  // paused or retrying until memory frees
  std::uint32_t turn_ = 1;
  std::uint32_t turn_requests_ = 0;
  std::int64_t phase_deadline_ns_ = 0;
  bool turn_over_ = false;           // this phase's time slice is spent
  std::uint32_t accepts_counted_turn_ = 0;  // `q` counts pending accepts once a turn
  MemoryBudget budget_;
  std::size_t max_out_;              // --max-output-per-connection
  std::size_t max_in_;               // --max-input-per-connection
  // Requests read ahead of being served, past which reading pauses: a
  // backlogged connection must not take the shared receive buffers from
  // the others (kReadAhead, or --max-input-per-connection if lower).
  std::size_t read_ahead_;
  std::int64_t last_trim_ns_ = 0;
  std::size_t trim_peak_ = 0;        // most memory used since the last trim
  std::int64_t inspector_since_ns_ = 0;  // when the budget's inspector took its turn
  std::set<std::tuple<std::int64_t, ConnId, Deadline>> deadlines_;

  std::uint64_t bytes_in_ = 0;
  std::uint64_t bytes_out_ = 0;
  std::uint64_t accepted_ = 0;
  std::size_t kept_sessions_ = 0;
  std::int64_t started_ns_ = 0;
  std::uint64_t drain_timeouts_ = 0;
  std::uint64_t queue_overflows_ = 0;  // connections closed by refuse_queued_input()
  std::uint64_t deferred_ = 0;         // times a connection's requests waited a turn
  std::uint64_t memory_pauses_ = 0;    // connections paused at the memory budget
  std::uint64_t input_pauses_ = 0;     // connections paused over --max-input-per-connection
  std::uint64_t output_pauses_ = 0;    // ... over --max-output-per-connection
  std::uint64_t ws_message_timeouts_ = 0;
  std::uint64_t trims_ = 0;            // malloc_trim calls

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
  RateLimit memory_limit_;
  RateLimit sighup_limit_{std::chrono::seconds(1)};

  // TLS (loop_tls.cpp).
  TlsContexts tls_;
  std::vector<std::pair<ConnId, std::uint32_t>> handshake_backlog_;  // (slot, gen), in order
  std::int64_t handshake_spent_ns_ = 0;  // handshake CPU this turn
  std::size_t open_tls_ = 0;
  std::uint64_t tls_handshakes_ = 0;
  std::uint64_t tls_failures_ = 0;
  std::uint64_t tls_timeouts_ = 0;
  std::uint64_t tls_deferrals_ = 0;
  std::uint64_t tls_reloads_ = 0;
  std::uint64_t tls_reload_failures_ = 0;
  std::uint64_t tls_memory_refusals_ = 0;
  RateLimit tls_failure_limit_;
  RateLimit tls_timeout_limit_;
  RateLimit tls_memory_limit_;
};

}  // namespace glockd
