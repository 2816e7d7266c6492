// Protocol implementation: the answers of PROTOCOL.md, byte for byte.
#include "protocol.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <utility>
#include <vector>

namespace glockd {

namespace {

constexpr std::array<std::string_view, kCommandCount> kCommandNames = {
    "d", "dump", "g", "i", "iam", "me", "q", "r", "sd", "sg", "si", "sr", "who", "t", "ra", "w",
    "sw", "grace", "session", "resume"};

constexpr std::uint64_t kMaxGraceMs = 600000;

constexpr std::uint32_t kMaxWaitMs = 2147483647;

// Parses a decimal in [lo, hi] that is the whole of `text`.
bool parse_number(std::string_view text, std::uint64_t lo, std::uint64_t hi, std::uint64_t& out) {
  if (text.empty()) return false;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size() && out >= lo && out <= hi;
}

// Splits "first rest" at the first space (the argument is already normalised).
std::pair<std::string_view, std::string_view> split_word(std::string_view s) {
  const std::size_t sp = s.find(' ');
  if (sp == std::string_view::npos) return {s, {}};
  return {s.substr(0, sp), s.substr(sp + 1)};
}

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

// Assembled on the stack and appended once: answers are built on every
// request, and std::string::resize would zero the bytes before the copy.
// The head is a literal, so its copy compiles to a few moves.
template <std::size_t N>
void answer(std::string& out, const char (&head)[N], std::string_view name) {
  constexpr std::size_t kHead = N - 1;
  char buf[160];
  const std::size_t len = kHead + name.size() + 1;
  if (len > sizeof buf) {
    out.append(head, kHead).append(name).push_back('\n');
    return;
  }
  std::memcpy(buf, head, kHead);
  if (!name.empty()) std::memcpy(buf + kHead, name.data(), name.size());
  buf[len - 1] = '\n';
  out.append(buf, len);
}

void answer_n(std::string& out, std::uint64_t n, std::string_view head, std::string_view name) {
  append_decimal(out, n);
  out.append(head);
  out.append(name);
  out.push_back('\n');
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
  answer_now(s, cmd, req.argument, out);
  return {};
}

Outcome Protocol::wait(Session& s, Command cmd, std::string_view args, std::string& out) {
  std::uint64_t limit = 0;
  if (cmd == Command::sw) {
    auto [word, rest] = split_word(args);
    if (!parse_number(word, 1, 0xffffffffu, limit)) {
      out.append("0 Bad Request: sw needs LIMIT MS NAME with LIMIT a number from 1 to 4294967295\n");
      return {};
    }
    args = rest;
  }
  auto [ms_text, name] = split_word(args);
  std::uint64_t ms = 0;
  if (!parse_number(ms_text, 0, kMaxWaitMs, ms)) {
    out.append(cmd == Command::w
                   ? "0 Bad Request: w needs MS NAME with MS a number from 0 to 2147483647\n"
                   : "0 Bad Request: sw needs LIMIT MS NAME with MS a number from 0 to 2147483647\n");
    return {};
  }
  const auto got = table_.wait(s.id, s.holdings, name, static_cast<std::uint32_t>(limit), ms > 0);
  const bool shared = cmd == Command::sw;
  switch (got.status) {
    case LockTable::WaitStatus::Granted:
      if (events_) events_->obtained(s.id, shared ? LockKind::Shared : LockKind::Exclusive, name);
      if (shared) answer_n(out, got.holders, " Shared Lock Get Success: ", name);
      else answer(out, "1 Lock Get Success: ", name);
      return {};
    case LockTable::WaitStatus::Refused:
      if (shared) answer(out, "0 Shared Lock Get Failure: ", name);
      else answer(out, "0 Lock Get Failure: ", name);
      return {};
    case LockTable::WaitStatus::Queued:
      break;
  }
  return Outcome{true, static_cast<std::uint32_t>(ms)};
}

void Protocol::answer_grant(const Grant& g, std::string& out) {
  if (events_) events_->obtained(g.conn, g.kind, g.name);
  if (g.kind == LockKind::Shared) answer_n(out, g.holders, " Shared Lock Get Success: ", g.name);
  else answer(out, "1 Lock Get Success: ", g.name);
}

void Protocol::expire_wait(Session& s, std::string& out) {
  table_.cancel_wait(s.holdings, [&](LockKind kind, std::string_view name) {
    if (kind == LockKind::Shared) answer(out, "0 Shared Lock Get Failure: ", name);
    else answer(out, "0 Lock Get Failure: ", name);
  });
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
      const std::string_view addr = server_.addr(s.id);
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
      if (name.empty()) registry_.drop(s.id);
      else registry_.set(s.id, name);
      if (events_) events_->renamed(s.id, name);
      out.append("1 ok\n");
      return;
    case Command::who:
      if (!features_.dump || !features_.registry) return out.append(kDisabled), void();
      return who(name, out);
    case Command::q:
      return stats_lines(out);
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
    case Command::grace: {
      std::uint64_t ms = 0;
      if (!parse_number(name, 0, kMaxGraceMs, ms)) {
        out.append("0 Bad Request: grace needs MS, a number from 0 to 600000\n");
        return;
      }
      s.grace_ms = static_cast<std::uint32_t>(ms);
      out.append("1 Grace Set: ");
      append_decimal(out, ms);
      out.push_back('\n');
      return;
    }
    case Command::session: {
      auto it = conn_token_.find(s.id);
      if (it == conn_token_.end()) {
        std::string token = server_.new_token();
        token_conn_.emplace(token, s.id);
        it = conn_token_.emplace(s.id, std::move(token)).first;
      }
      out.append("1 Session: ");
      out.append(it->second);
      out.push_back('\n');
      return;
    }
    case Command::resume:
      return resume(s, name, out);
    case Command::w:
    case Command::sw:
    case Command::kCount:
      break;
  }
}

void Protocol::orphan_all(Session& s) {
  table_.release_all(s.holdings, [&](LockKind kind, std::string_view name) {
    if (kind == LockKind::Exclusive) ++stats_.orphans;
    else ++stats_.shared_orphans;
    if (events_) events_->orphaned(s.id, kind, name);
  });
  if (auto it = conn_token_.find(s.id); it != conn_token_.end()) {
    token_conn_.erase(it->second);
    conn_token_.erase(it);
  }
}

bool Protocol::disconnect(Session& s) {
  registry_.drop(s.id);
  table_.cancel_wait(s.holdings, [](LockKind, std::string_view) {});
  if (s.grace_ms > 0 && s.holdings.total() > 0) return true;
  orphan_all(s);
  return false;
}

void Protocol::expire_detached(Session& s) { orphan_all(s); }

void Protocol::resume(Session& s, std::string_view token, std::string& out) {
  auto it = token_conn_.find(std::string(token));
  Session* old = it == token_conn_.end() || it->second == s.id ? nullptr
                                                               : server_.detached(it->second);
  if (old == nullptr) {
    out.append("0 Resume Failure\n");
    return;
  }
  const std::uint32_t ex = old->holdings.exclusive;
  const std::uint32_t sh = old->holdings.shared;
  table_.transfer(old->holdings, s.id, s.holdings);
  // The token now names this connection's locks, and so does the grace.
  const ConnId from = old->id;
  std::string moved = std::move(conn_token_[from]);
  conn_token_.erase(from);
  token_conn_[moved] = s.id;
  if (auto mine = conn_token_.find(s.id); mine != conn_token_.end()) {
    token_conn_.erase(mine->second);
    mine->second = std::move(moved);
  } else {
    conn_token_.emplace(s.id, std::move(moved));
  }
  s.grace_ms = std::max(s.grace_ms, old->grace_ms);
  server_.forget_detached(from);
  out.append("1 Resume Success: ");
  append_decimal(out, ex);
  out.push_back(' ');
  append_decimal(out, sh);
  out.push_back('\n');
}

}  // namespace glockd
