// ConnectionTable: slot reuse with generations.
#include "connection.hpp"

namespace glockd {

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
  c.session.id = id;
  c.state = ConnState::Open;
  ++in_use_;
  return c;
}

void ConnectionTable::free(Connection& c) {
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
