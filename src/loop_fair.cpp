// No client can hurt another: fair turns (a budget of requests per
// connection per turn and a time slice per phase, the rest served in
// arrival order on later turns), and the memory budget (what each
// connection buffers is reported as it changes; at the budget the biggest
// stop being read, inspections take turns, idle memory goes back).
#include <malloc.h>
#include <spdlog/spdlog.h>

#include <limits>

#include "loop.hpp"
#include "loop_internal.hpp"

namespace glockd {

using namespace loop_detail;
using State = Connection::State;

void Loop::enter_backlog(Connection& c) {
  c.in_backlog = true;
  backlog_.push_back(c.session.id);
}

void Loop::begin_phase() {
  turn_over_ = false;
  turn_requests_ = 0;
  phase_deadline_ns_ = 0;  // the first check starts the slice: no clock read for a short phase
}

bool Loop::turn_overdue() {
  if (turn_over_) return true;
  const std::int64_t now = now_ns();
  if (phase_deadline_ns_ == 0)
    phase_deadline_ns_ = now + std::chrono::nanoseconds(kTurnSlice).count();
  else if (now >= phase_deadline_ns_)
    turn_over_ = true;
  return turn_over_;
}

void Loop::reaccount(Connection& c, std::size_t now) {
  if (now > kKeepBuffer) {
    release_buffers(c);
    now = c.buffered();
  }
  if (now != c.accounted) {
    budget_.rebuffer(c.accounted, now);
    c.accounted = now;
    trim_peak_ = std::max(trim_peak_, budget_.used());
  }
  // At the budget: the connections holding the most stop being read, and
  // served (may_serve) past their share; one already paused for its own
  // bounds (Throttled) too, or it would go on filling its answers.
  if (!budget_.full() || c.memory_paused || !c.serves_requests() ||
      c.holding() <= pause_floor())
    return;
  ++memory_pauses_;
  c.memory_paused = true;
  memory_held_.push_back(c.session.id);
  warn_limited(memory_limit_,
               c.session.addr + ": memory budget reached (--max-memory " +
                   std::to_string(budget_.limit()) + " bytes, " +
                   std::to_string(budget_.used()) + " in use); paused reading from it (" +
                   std::to_string(c.holding()) + " bytes held for it)");
  if (c.state() == State::Reading) throttle(c);
}

void Loop::serve_queued_now(Connection& c) {
  if (c.waiting()) return;  // what waits behind a wait goes with the peer
  const std::int64_t deadline = phase_deadline_ns_;
  const bool over = turn_over_;
  phase_deadline_ns_ = std::numeric_limits<std::int64_t>::max();
  turn_over_ = false;
  while (c.open() && !c.pending_input.empty() && may_serve(c)) {
    c.turn_seen = turn_;
    c.turn_left = std::numeric_limits<std::uint32_t>::max();
    std::string input = std::move(c.pending_input);
    c.pending_input.clear();
    consume_lines(c, input);
  }
  phase_deadline_ns_ = deadline;
  turn_over_ = over;
}

bool Loop::hold_line(Connection& c, std::string_view line) {
  // An inspection while another is being made past the budget: it goes
  // back to the front of the queue and is served when memory frees.
  c.pending_input.append(line).push_back('\n');
  c.inspection_retry = true;
  memory_held_.push_back(c.session.id);
  return false;
}

void Loop::release_memory_holds() {
  if (memory_held_.empty()) return;
  if (const ConnId who = budget_.inspector(); who != kNil) {
    if (inspector_since_ns_ == 0) inspector_since_ns_ = now_ns();
    if (now_ns() - inspector_since_ns_ > std::chrono::nanoseconds(kInspectionTurn).count()) {
      warn_limited(memory_limit_, conns_.at(who).session.addr +
                                      ": has not read its inspection answer made past the "
                                      "memory budget; the next inspection goes ahead");
      budget_.inspection_done(who);
    }
  }
  if (budget_.inspector() == kNil) inspector_since_ns_ = 0;
  // Paused connections resume below 7/8 of the budget (hysteresis: not
  // on and off at every byte); inspections when the budget allows one.
  const bool room = budget_.used() < budget_.limit() - budget_.limit() / 8;
  if (!room && budget_.inspector() != kNil) return;
  std::size_t kept = 0;
  for (ConnId id : memory_held_) {
    Connection& c = conns_.at(id);
    if (c.inspection_retry) {
      c.inspection_retry = false;
      schedule(c);
    }
    if (c.memory_paused) {
      if (!room) {
        memory_held_[kept++] = id;
        continue;
      }
      c.memory_paused = false;
      maybe_unthrottle(c);
      schedule(c);
    }
  }
  memory_held_.resize(kept);
}

void Loop::release_buffers(Connection& c) {
  // A burst's buffers are not kept by an idle connection.
  if (c.send_rest().empty() && c.sending.capacity() > kKeepBuffer) {
    std::string().swap(c.sending);
    c.sent = 0;
  }
  if (c.out.empty() && c.out.capacity() > kKeepBuffer) std::string().swap(c.out);
  if (c.pending_input.empty() && c.pending_input.capacity() > kKeepBuffer)
    std::string().swap(c.pending_input);
}

std::int64_t Loop::maybe_trim() {
  // Freed memory goes back to the kernel once the loop is idle, so RSS
  // falls back after a burst (glibc keeps freed heap pages otherwise).
  const std::size_t used = budget_.used();
  if (trim_peak_ < used + kTrimAfter) return -1;
  const std::int64_t now = now_ns();
  const std::int64_t due = last_trim_ns_ + std::chrono::nanoseconds(kTrimInterval).count();
  if (now < due) return due;  // not this often: the loop wakes up for it
  ::malloc_trim(0);
  ++trims_;
  last_trim_ns_ = now;
  trim_peak_ = used;
  return -1;
}

}  // namespace glockd
