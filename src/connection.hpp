// Connection: one client's socket state: what it has read but not yet
// answered, the answers waiting to be sent, the locks it holds (through its
// Session), and which io_uring operations are in flight for it.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "line_reader.hpp"
#include "listeners.hpp"
#include "protocol.hpp"
#include "ws_conn.hpp"

namespace glockd {

enum class ConnState : std::uint8_t {
  Free,     // the slot holds no connection
  Open,     // reading requests, sending answers
  Closing,  // locks released (or kept, see keep_detached); waits for
            // in-flight operations, then close()
  Detached, // socket closed, locks kept for the session's grace period
};


struct Connection {
  explicit Connection(std::size_t max_line) : reader(max_line) {}

  int fd = -1;
  std::uint32_t gen = 0;  // bumped when the slot is recycled
  Transport transport = Transport::Tcp;
  ConnState state = ConnState::Free;
  bool recv_armed = false;      // a (multishot) recv is in flight
  bool send_inflight = false;
  bool hup_watch = false;       // a poll for hangup is in flight (reading paused)
  std::uint8_t cancels = 0;     // cancel requests in flight
  bool reading_paused = false;  // over kMaxUnsentOutput unsent: recv off, hangup watched
  bool queued_for_flush = false;
  bool flush_on_close = false;  // Closing: send what is left, then close
  bool lingering = false;       // Closing: all sent, FIN sent, reading until the peer's
  bool peer_eof = false;        // the peer's FIN (or an error) was read
  bool blocked = false;         // a w/sw waits: later requests wait behind it
  bool keep_detached = false;   // dropped with `grace`: keep the slot and locks
  std::int64_t deadline_ns = 0; // when the blocked wait or the grace ends
  std::int64_t drain_deadline_ns = 0;  // flush_on_close: when to give up
  Session session;
  LineReader reader;
  std::string out;      // answers produced since the last send was issued
  std::string sending;  // the bytes of the send in flight
  std::size_t sent = 0; // how much of `sending` the kernel took so far
  std::string addr;     // IP:PORT, [IP]:PORT or unix:N
  std::string pending_input;  // requests held back behind a wait or unsent answers
  std::unique_ptr<WebSocketState> ws;  // websocket/HTTP port only

  bool idle() const { return !recv_armed && !send_inflight && cancels == 0 && !hup_watch; }
  std::size_t unsent() const { return out.size() + sending.size() - sent; }
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
