// Protocol implementation: the answers of docs/PROTOCOL.md, byte for byte.
#include "protocol.hpp"
#include "protocol_internal.hpp"

#include <algorithm>
#include <cassert>
#include <charconv>
#include <cstring>
#include <utility>
#include <vector>

namespace glockd {

using namespace protocol_detail;

namespace {

constexpr std::array<std::string_view, kCommandCount> kCommandNames = {
    "d", "dump", "g", "i", "iam", "me", "q", "r", "sd", "sg", "si", "sr", "who", "t", "ra", "w",
    "sw", "grace", "session", "resume"};

// ASCII whitespace as Go's strings.TrimSpace/Fields see it.
// ASCII whitespace as Go's strings.TrimSpace/Fields see it, as a table:
// this runs over every byte of every request.
constexpr std::array<bool, 256> kSpaceTable = [] {
  std::array<bool, 256> t{};
  for (unsigned char c : {' ', '\t', '\n', '\v', '\f', '\r'}) t[c] = true;
  return t;
}();

constexpr bool is_space(char c) { return kSpaceTable[static_cast<unsigned char>(c)]; }

bool has_byte_below(const char* p, const char* e, unsigned char n) {
  constexpr std::uint64_t kOnes = 0x0101010101010101ULL;
  constexpr std::uint64_t kHighs = 0x8080808080808080ULL;
  for (; e - p >= 8; p += 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    if ((w - kOnes * n) & ~w & kHighs) return true;
  }
  for (; p < e; ++p)
    if (static_cast<unsigned char>(*p) < n) return true;
  return false;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

// A switch on length and first letter instead of comparing every name.
bool lookup_command(std::string_view w, Command& out) {
  auto is = [&](Command c) {
    if (w != kCommandNames[static_cast<std::size_t>(c)]) return false;
    out = c;
    return true;
  };
  switch (w.size()) {
    case 1:
      switch (w[0]) {
        case 'g': return is(Command::g);
        case 'r': return is(Command::r);
        case 'i': return is(Command::i);
        case 'd': return is(Command::d);
        case 'q': return is(Command::q);
        case 't': return is(Command::t);
        case 'w': return is(Command::w);
      }
      return false;
    case 2:
      if (w[0] == 's') {
        switch (w[1]) {
          case 'g': return is(Command::sg);
          case 'r': return is(Command::sr);
          case 'i': return is(Command::si);
          case 'd': return is(Command::sd);
          case 'w': return is(Command::sw);
        }
        return false;
      }
      return is(Command::me) || is(Command::ra);
    case 3: return is(Command::iam) || is(Command::who);
    case 4: return is(Command::dump);
    case 5: return is(Command::grace);
    case 6: return is(Command::resume);
    case 7: return is(Command::session);
  }
  return false;
}

constexpr std::string_view kDisabled = "0 disabled\n";

}  // namespace

void append_decimal(std::string& out, std::uint64_t n) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, n);
  out.append(buf, end);
}

std::string_view command_name(Command c) { return kCommandNames[static_cast<std::size_t>(c)]; }

Request parse_request(std::string_view line, std::string& scratch) {
  const char* p = line.data();
  const char* e = p + line.size();
  while (p < e && is_space(*p)) ++p;
  while (e > p && is_space(e[-1])) --e;
  const char* word_end = p;
  while (word_end < e && *word_end != ' ') ++word_end;
  Request req{std::string_view(p, static_cast<std::size_t>(word_end - p)), {}};
  if (word_end == e) return req;
  const char* a = word_end + 1;
  while (a < e && is_space(*a)) ++a;  // e is trimmed already
  req.argument = std::string_view(a, static_cast<std::size_t>(e - a));
  // Names rarely hold whitespace other than single spaces: look for any
  // byte <= ' ' eight at a time first (the classic "has a byte less than
  // n" bit trick), and only then byte by byte.
  if (!has_byte_below(a, e, 0x21)) return req;
  bool clean = true;
  for (const char* q = a; q < e && clean; ++q)
    clean = !is_space(*q) || (*q == ' ' && !is_space(q[1]));
  if (clean) return req;
  scratch.clear();
  bool in_space = false;
  for (const char* q = a; q < e; ++q) {
    if (is_space(*q)) {
      in_space = true;
      continue;
    }
    if (in_space) scratch.push_back(' ');
    in_space = false;
    scratch.push_back(*q);
  }
  req.argument = scratch;
  return req;
}

Outcome Protocol::handle_line(Session& s, std::string_view line, std::string& out) {
  std::string scratch;
  const Request req = parse_request(line, scratch);
  if (req.command.empty() && req.argument.empty()) return {};  // blank line
  Command cmd;
  if (!lookup_command(req.command, cmd)) {
    ++stats_.invalid_commands;
    if (events_) events_->invalid(s.id, trim(line));
    return {};
  }
  if (cmd == Command::w || cmd == Command::sw) {
    ++stats_.commands[static_cast<std::size_t>(cmd)];
    return wait(s, cmd, req.argument, out);
  }
  switch (cmd) {
    case Command::g:
    case Command::sg:
      if (growth_refused(s) != Refusal::None) [[unlikely]] {
        if (const Refusal r = refuse_lock(s, cmd, req.argument, out); r != Refusal::None) {
          ++stats_.commands[static_cast<std::size_t>(cmd)];
          return Outcome{.refused = r};
        }
      }
      break;
    case Command::d:
    case Command::sd:
    case Command::dump:
    case Command::who:
      // As large as the table: made past a full budget one at a time.
      if (budget_ != nullptr && !budget_->admit_inspection(s.id)) return Outcome{.retry = true};
      break;
    case Command::iam:
      if (features_.registry && !req.argument.empty() && budget_ != nullptr && budget_->full()) {
        ++stats_.commands[static_cast<std::size_t>(cmd)];
        return refuse_memory(out);
      }
      break;
    case Command::grace:
      ++stats_.commands[static_cast<std::size_t>(cmd)];
      return grace(s, req.argument, out);
    case Command::session:
      ++stats_.commands[static_cast<std::size_t>(cmd)];
      return session(s, out);
    case Command::resume:
      ++stats_.commands[static_cast<std::size_t>(cmd)];
      return resume(s, req.argument, out);
    case Command::q:  // answered by answer_stats(), once the loop has counted
      ++stats_.commands[static_cast<std::size_t>(cmd)];
      return Outcome{.count_connections = true};
    default:
      break;
  }
  answer_now(s, cmd, req.argument, out);
  return {};
}

Refusal Protocol::refuse_lock(Session& s, Command cmd, std::string_view name, std::string& out) {
  const bool shared = cmd == Command::sg || cmd == Command::sw;
  // Taking a lock again that is already held grows nothing.
  if (table_.holds(s.id, s.holdings, shared ? LockKind::Shared : LockKind::Exclusive, name))
    return Refusal::None;
  const Refusal r = growth_refused(s);
  if (r == Refusal::LockLimit) ++stats_.lock_limit_refusals;
  else ++stats_.memory_refusals;
  if (shared) answer(out, "0 Shared Lock Get Failure: ", name);
  else answer(out, "0 Lock Get Failure: ", name);
  return r;
}

Outcome Protocol::refuse_memory(std::string& out) {
  ++stats_.memory_refusals;
  out.append("0 Bad Request: memory limit\n");
  return Outcome{.refused = Refusal::MemoryFull};
}

void Protocol::attach(Session& s) {
  assert(s.id != kNil && !s.kept);
  if (sessions_.size() <= s.id) sessions_.resize(s.id + 1, nullptr);
  assert(sessions_[s.id] == nullptr);
  sessions_[s.id] = &s;
}

void Protocol::name_from_certificate(Session& s, std::string name) {
  s.certificate_name = std::move(name);
  if (!features_.registry) return;
  registry_.set(s.id, s.certificate_name);
  if (events_) events_->renamed(s.id, s.certificate_name);
}

void Protocol::forget(const Session& s) {
  assert(s.id < sessions_.size() && sessions_[s.id] == &s);
  assert(s.holdings.total() == 0 && !s.kept);
  sessions_[s.id] = nullptr;
}

std::string_view Protocol::addr(ConnId conn) const {
  assert(conn < sessions_.size() && sessions_[conn] != nullptr);
  return sessions_[conn]->addr;
}

void Protocol::answer_now(Session& s, Command cmd, std::string_view name, std::string& out) {
  ++stats_.commands[static_cast<std::size_t>(cmd)];
  switch (cmd) {
    case Command::g: {
      const auto got = table_.acquire(s.id, s.holdings, name);
      if (!got.ok) return answer(out, "0 Lock Get Failure: ", name);
      if (got.newly && events_) events_->obtained(s.id, LockKind::Exclusive, name);
      return answer(out, "1 Lock Get Success: ", name);
    }
    case Command::r:
      if (!table_.release(s.id, s.holdings, name))
        return answer(out, "0 Lock Release Failure: ", name);
      if (events_) events_->released(s.id, LockKind::Exclusive, name);
      return answer(out, "1 Lock Release Success: ", name);
    case Command::i:
      if (table_.is_locked(name)) return answer(out, "1 Lock Is Locked: ", name);
      return answer(out, "0 Lock Not Locked: ", name);
    case Command::sg: {
      const auto got = table_.acquire_shared(s.id, s.holdings, name);
      if (got.newly && events_) events_->obtained(s.id, LockKind::Shared, name);
      return answer_n(out, got.holders, " Shared Lock Get Success: ", name);
    }
    case Command::sr:
      if (!table_.release_shared(s.id, s.holdings, name))
        return answer(out, "0 Shared Lock Release Failure: ", name);
      if (events_) events_->released(s.id, LockKind::Shared, name);
      return answer(out, "1 Shared Lock Release Success: ", name);
    case Command::si: {
      const std::uint32_t n = table_.shared_holders(name);
      if (n == 0) return answer(out, "0 Shared Lock Not Locked: ", name);
      return answer_n(out, n, " Shared Lock Is Locked: ", name);
    }
    case Command::d:
    case Command::sd:
      if (!features_.dump) return out.append(kDisabled), void();
      return dump_lines(cmd == Command::d ? LockKind::Exclusive : LockKind::Shared, name, out);
    case Command::dump:
      if (!features_.dump) return out.append(kDisabled), void();
      return dump_map(name == "shared" ? LockKind::Shared : LockKind::Exclusive, out);
    case Command::me: {
      const std::string_view addr = s.addr;
      out.append("1 ");
      out.append(addr);
      out.push_back(' ');
      const std::string* reg = features_.registry ? registry_.name_of(s.id) : nullptr;
      out.append(reg ? std::string_view(*reg) : addr);
      out.push_back('\n');
      return;
    }
    case Command::iam:
      if (!features_.registry) return out.append(kDisabled), void();
      // A certificate's name stays: `iam X` adds to it (CN/X), so a
      // client cannot pass itself off as another.
      if (!s.certificate_name.empty())
        registry_.set(s.id, name.empty() ? s.certificate_name
                                         : s.certificate_name + "/" + std::string(name));
      else if (name.empty()) registry_.drop(s.id);
      else registry_.set(s.id, name);
      if (events_) events_->renamed(s.id, name);
      out.append("1 ok\n");
      return;
    case Command::who:
      if (!features_.dump || !features_.registry) return out.append(kDisabled), void();
      return who(name, out);
    case Command::t: {
      const std::uint64_t token = table_.token(s.id, name);
      if (token == 0) return answer(out, "0 Lock Token Failure: ", name);
      return answer_n(out, token, " Lock Token: ", name);
    }
    case Command::ra: {
      const std::uint32_t ex = s.holdings.exclusive;
      const std::uint32_t sh = s.holdings.shared;
      table_.release_all(s.holdings, [&](LockKind kind, std::string_view lock) {
        if (events_) events_->released(s.id, kind, lock);
      });
      out.append("1 Release All Success: ");
      append_decimal(out, ex);
      out.push_back(' ');
      append_decimal(out, sh);
      out.push_back('\n');
      return;
    }
    case Command::resume:
    case Command::q:
    case Command::grace:
    case Command::session:
    case Command::w:
    case Command::sw:
    case Command::kCount:
      break;
  }
}

}  // namespace glockd
