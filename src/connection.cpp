// Connection's transitions and in-flight counters (each asserts what it
// expects: a broken invariant stops the daemon rather than grant a lock
// twice), and ConnectionTable: slot reuse with generations.
#include "connection.hpp"

#include <cassert>

namespace glockd {

using State = Connection::State;

const char* Connection::state_name() const {
  switch (state_) {
    case State::Free: return "free";
    case State::Reading: return "reading";
    case State::Blocked: return "blocked";
    case State::Throttled: return "throttled";
    case State::Draining: return "draining";
    case State::Closing: return "closing";
    case State::Detached: return "detached";
  }
  return "?";
}

void Connection::start(int socket, Transport t, LayerPtr<Framing> framing,
                       LayerPtr<ByteStream> stream) {
  assert(state_ == State::Free && fd < 0 && idle());
  fd = socket;
  transport = t;
  framing_ = std::move(framing);
  stream_ = std::move(stream);
  state_ = State::Reading;
}

void Connection::block() {
  assert(serves_requests());
  if (state_ == State::Reading) state_ = State::Blocked;
  else after_throttle_ = State::Blocked;
}

void Connection::end_wait() {
  assert(waiting());
  if (state_ == State::Blocked) state_ = State::Reading;
  else after_throttle_ = State::Reading;
}

void Connection::throttle() {
  assert(state_ == State::Reading || state_ == State::Blocked);
  after_throttle_ = state_;
  state_ = State::Throttled;
}

void Connection::unthrottle() {
  assert(state_ == State::Throttled);
  state_ = after_throttle_;
  after_throttle_ = State::Reading;
}

void Connection::drain() {
  assert(open());
  state_ = State::Draining;
}

void Connection::close() {
  assert(open() || state_ == State::Draining);
  state_ = State::Closing;
}

void Connection::closed() {
  assert(state_ == State::Closing && idle() && fd < 0);
  state_ = State::Detached;
}

Connection& ConnectionTable::allocate() {
  ConnId id;
  if (!free_.empty()) {
    id = free_.back();
    free_.pop_back();
  } else {
    id = static_cast<ConnId>(slots_.size());
    slots_.emplace_back(max_line_);
  }
  Connection& c = slots_[id];
  assert(c.state() == State::Free);
  c.session.id = id;
  ++in_use_;
  return c;
}

void ConnectionTable::free(Connection& c) {
  assert((c.state() == State::Closing || c.state() == State::Detached) && c.idle() && c.fd < 0);
  assert(!c.session.kept && c.session.holdings.total() == 0);
  const ConnId id = c.session.id;
  const std::uint32_t gen = c.gen + 1;
  c.~Connection();
  new (&c) Connection(max_line_);
  c.gen = gen;
  c.session.id = id;
  free_.push_back(id);
  --in_use_;
}

}  // namespace glockd
