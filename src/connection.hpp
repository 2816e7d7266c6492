// Connection: what can happen to one client's connection. One state value,
// changed only by the transitions below, each asserting the state it
// expects; counters of the ring operations in flight; and the buffers
// between the socket and the protocol. Pure: the Loop does the I/O.
#pragma once

#include <array>
#include <cassert>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "framing.hpp"
#include "line_reader.hpp"
#include "listeners.hpp"
#include "protocol.hpp"
#include "stream.hpp"

namespace glockd {

// Deadlines a connection can have; each at most once (Loop's timers).
enum class Deadline : std::uint8_t {
  Framing,  // the framing's own (an HTTP request head must complete)
  Wait,     // a blocked w/sw gives up
  Drain,    // a Draining connection's last answers must be read by then
  Grace,    // a kept session's locks are released
  Handshake,  // a TLS handshake must be over (--ssl-handshake-timeout)
};
inline constexpr std::size_t kDeadlines = 5;

class Connection {
 public:
  enum class State : std::uint8_t {
    // The slot holds no connection.
    Free,
    // A recv is armed (or re-armed at the end of the turn); each request is
    // handled as it arrives.
    Reading,
    // A w/sw waits for its lock. The recv stays armed (a peer that leaves
    // must lose its locks at once) and later requests queue behind the wait,
    // within a bound past which the connection is refused.
    Blocked,
    // Not reading from the socket: the peer sends faster than it is
    // served. Entered when its unsent answers pass their bound, its queued
    // requests pass theirs (not behind a wait), or the memory budget is
    // full and it holds much. A poll watches for the peer's FIN or RST
    // meanwhile. Queued requests are still served while its unsent answers
    // are within bound (Loop::may_serve). Returns to Reading (or Blocked)
    // once every cause is at half its bound (Loop::maybe_unthrottle).
    Throttled,
    // Closing with answers to deliver (the peer half-closed, or is told why
    // it is dropped): they go out, then our FIN, then the peer's input is
    // read and dropped until its FIN, so that close() never resets answers
    // in flight. Bounded by --drain-timeout.
    Draining,
    // Closing: the operations in flight are cancelled; the descriptor is
    // closed when none is left (terminate, then close when idle).
    Closing,
    // The socket is closed; the session and its locks are kept for its
    // grace period, until resumed or expired.
    Detached,
  };

  explicit Connection(std::size_t max_line) : reader(max_line) {}

  State state() const { return state_; }
  bool open() const {
    return state_ == State::Reading || state_ == State::Blocked || state_ == State::Throttled;
  }
  // Not behind a wait and not closing: its requests may be served (the
  // loop adds its bounds on output and memory, and the turn's budget).
  bool serves_requests() const {
    return state_ == State::Reading ||
           (state_ == State::Throttled && after_throttle_ == State::Reading);
  }
  // ... and nothing queued goes first.
  bool handles_requests_now() const { return serves_requests() && pending_input.empty(); }
  const char* state_name() const;
  bool has_socket() const { return state_ != State::Free && state_ != State::Detached; }

  // --- transitions ---------------------------------------------------------
  void start(int fd, Transport transport, LayerPtr<Framing> framing,
             LayerPtr<ByteStream> stream);  // Free -> Reading
  void block();       // Reading -> Blocked; Throttled stays, Blocked after
  void end_wait();    // Blocked -> Reading; Throttled: back to Reading later
  void throttle();    // Reading | Blocked -> Throttled
  void unthrottle();  // Throttled -> Reading | Blocked
  void drain();       // Reading | Blocked | Throttled -> Draining
  void close();       // Reading | Blocked | Throttled | Draining -> Closing
  // Closing, nothing in flight: the descriptor is gone. -> Detached when
  // the session is kept, else the slot is to be freed (ConnectionTable).
  void closed();
  bool waiting() const {
    return state_ == State::Blocked ||
           (state_ == State::Throttled && after_throttle_ == State::Blocked);
  }

  // --- operations in flight --------------------------------------------------
  struct InFlight {
    std::uint8_t recv = 0;     // a (multishot) recv
    std::uint8_t send = 0;
    std::uint8_t hangup = 0;   // a poll for the peer's FIN or RST (Throttled)
    std::uint16_t cancels = 0;
  };
  const InFlight& in_flight() const { return in_flight_; }
  bool idle() const {
    return in_flight_.recv == 0 && in_flight_.send == 0 && in_flight_.hangup == 0 &&
           in_flight_.cancels == 0;
  }
  // Each asserts the count it changes stays 0 or 1 (cancels: >= 0), and
  // that nothing is started on a connection without a socket.
  void recv_armed() { assert(!in_flight_.recv && has_socket()); in_flight_.recv = 1; }
  void recv_ended() { assert(in_flight_.recv); in_flight_.recv = 0; }
  void send_started() {
    assert(!in_flight_.send && (open() || state_ == State::Draining));
    in_flight_.send = 1;
  }
  void send_ended() { assert(in_flight_.send); in_flight_.send = 0; }
  void hangup_armed() {
    assert(!in_flight_.hangup && state_ == State::Throttled);
    in_flight_.hangup = 1;
  }
  void hangup_ended() { assert(in_flight_.hangup); in_flight_.hangup = 0; }
  void cancel_started() { assert(has_socket()); ++in_flight_.cancels; }
  void cancel_ended() { assert(in_flight_.cancels > 0); --in_flight_.cancels; }

  // --- output ---------------------------------------------------------------
  std::size_t unsent() const { return out.size() + sending.size() - sent; }
  // Moves the answers made so far into the send buffer through the byte
  // stream; false when a send is in flight or there is nothing to send.
  bool take_output() {
    if (in_flight_.send != 0) return false;
    // A stream of its own (TLS) may have bytes to send without answers.
    if (out.empty() && (stream_->shared() || !stream_->has_output())) return false;
    assert(sent == sending.size());
    sending.clear();
    sent = 0;
    stream_->encode(out, sending);
    return !sending.empty();
  }
  std::string_view send_rest() const { return std::string_view(sending).substr(sent); }
  // The stream's closing bytes (TLS close_notify) into the send buffer,
  // once; false when there are none or a send is in flight.
  bool take_close() {
    if (in_flight_.send != 0 || stream_->shared() || close_taken_) return false;
    close_taken_ = true;
    sending.clear();
    sent = 0;
    stream_->close(sending);
    return !sending.empty();
  }
  // The socket is gone: a stream's state (TLS) is not kept for a detached
  // session's grace period.
  void drop_stream() { stream_.reset(&PlainStream::instance()); }

  // Writes one answer through the framing: write(buffer) fills the buffer
  // the framing gives, which is then framed into `out`. (The per-request
  // path, Loop::handle_request, makes the same two calls itself.)
  template <class Write>
  void answer(Write&& write) {
    write(framing_->answer_buffer(out));
    framing_->end_answer(out);
  }
  Framing& framing() { return *framing_; }
  ByteStream& stream() { return *stream_; }

  // --- data -----------------------------------------------------------------
  int fd = -1;
  std::uint32_t gen = 0;  // bumped when the slot is recycled
  Transport transport = Transport::Tcp;
  bool queued_for_flush = false;  // in the loop's flush list for this turn
  bool fin_sent = false;          // Draining: shutdown(SHUT_WR) done
  bool peer_eof = false;          // the peer's FIN (or an error) was read
  bool fin_seen = false;          // Throttled: the hangup poll saw the peer's FIN
  bool handshake_queued = false;  // its TLS handshake waits for CPU in a later turn
  std::array<std::int64_t, kDeadlines> deadlines{};  // 0: none
  Session session;
  LineReader reader;
  std::string out;      // answers produced since the last send was issued
  std::string sending;  // the bytes of the send in flight
  std::size_t sent = 0; // how much of `sending` the kernel took so far
  std::string pending_input;  // requests held back behind a wait or unsent answers

  // --- fairness and memory (Loop) ------------------------------------------
  std::size_t accounted = 0;   // buffered bytes last reported to the memory budget
  std::uint32_t turn_seen = 0; // the loop turn turn_left belongs to
  std::uint32_t turn_left = 0; // requests it may still have served this turn
  bool in_backlog = false;     // queued to have its pending input served
  bool memory_paused = false;  // throttled because the memory budget is full
  bool inspection_retry = false;  // its first queued request waits for memory
  std::uint64_t framing_unit = 0;  // Framing::unit() the framing deadline is for
  // Bytes it holds for its peer: answers not yet sent, requests not yet
  // served, a partial line or message (buffered() is the room they take).
  std::size_t holding() const {
    return unsent() + pending_input.size() + reader.buffered() +
           (framing_->transparent() ? 0 : framing_->buffered());
  }
  std::size_t buffered() const {
    return out.capacity() + sending.capacity() + pending_input.capacity() + reader.buffered() +
           (framing_->transparent() ? 0 : framing_->buffered());
  }

 private:
  State state_ = State::Free;
  State after_throttle_ = State::Reading;
  bool close_taken_ = false;
  InFlight in_flight_;
  LayerPtr<Framing> framing_;
  LayerPtr<ByteStream> stream_;
};

// Slots with stable addresses; a slot's index is the connection's ConnId.
class ConnectionTable {
 public:
  explicit ConnectionTable(std::size_t max_line) : max_line_(max_line) {}
  Connection& allocate();
  void free(Connection& c);
  Connection& at(ConnId id) { return slots_[id]; }
  const Connection& at(ConnId id) const { return slots_[id]; }
  std::size_t slots() const { return slots_.size(); }
  std::size_t in_use() const { return in_use_; }  // open, closing or detached

 private:
  std::deque<Connection> slots_;
  std::vector<ConnId> free_;
  std::size_t max_line_;
  std::size_t in_use_ = 0;
};

}  // namespace glockd
